// What differs between the supported architectures: which tensors a checkpoint holds, with which
// shapes, and three small numeric choices. The forward pass itself is one, in decoder.ts.
import type * as tf from "@tensorflow/tfjs-core";
import { headDim, numKvHeads, tiedEmbeddings, type ModelConfig } from "../config.ts";

export interface ExpectedTensor {
  /** The checkpoint's own key, e.g. `model.layers.3.mlp.down_proj.weight`. */
  key: string;
  /** Shape as stored in the checkpoint (PyTorch's [out_features, in_features] for linear weights). */
  shape: number[];
  /** Linear weights are held transposed in memory ([in, out]) so matMul needs no transposeB. */
  transposed: boolean;
}

export interface Architecture {
  modelTypes: readonly string[];
  /** Multiply token embeddings by this (Gemma: sqrt(hidden_size)). */
  embedScale(config: ModelConfig): number;
  /** RMSNorm computes `x / rms(x) * (normOffset + w)` (Gemma stores w - 1). */
  normOffset: number;
  /** The MLP's gate activation. */
  activation(x: tf.Tensor): tf.Tensor;
  /** Whether q, k, v (and o) projections carry biases. */
  qkvBias(config: ModelConfig): boolean;
  oBias(config: ModelConfig): boolean;
}

export const layerKey = (l: number, rest: string) => `model.layers.${l}.${rest}`;

/** Every tensor the checkpoint must hold, with its stored shape, read from config.json alone. */
export function expectedTensors(arch: Architecture, config: ModelConfig): ExpectedTensor[] {
  const d = config.hidden_size;
  const dMlp = config.intermediate_size;
  const qDim = config.num_attention_heads * headDim(config);
  const kvDim = numKvHeads(config) * headDim(config);
  const mlpBias = config.mlp_bias ?? false;
  const out: ExpectedTensor[] = [];
  const linear = (key: string, outF: number, inF: number, bias: boolean) => {
    out.push({ key: `${key}.weight`, shape: [outF, inF], transposed: true });
    if (bias) out.push({ key: `${key}.bias`, shape: [outF], transposed: false });
  };
  out.push({ key: "model.embed_tokens.weight", shape: [config.vocab_size, d], transposed: false });
  for (let l = 0; l < config.num_hidden_layers; l++) {
    out.push({ key: layerKey(l, "input_layernorm.weight"), shape: [d], transposed: false });
    linear(layerKey(l, "self_attn.q_proj"), qDim, d, arch.qkvBias(config));
    linear(layerKey(l, "self_attn.k_proj"), kvDim, d, arch.qkvBias(config));
    linear(layerKey(l, "self_attn.v_proj"), kvDim, d, arch.qkvBias(config));
    linear(layerKey(l, "self_attn.o_proj"), d, qDim, arch.oBias(config));
    out.push({ key: layerKey(l, "post_attention_layernorm.weight"), shape: [d], transposed: false });
    linear(layerKey(l, "mlp.gate_proj"), dMlp, d, mlpBias);
    linear(layerKey(l, "mlp.up_proj"), dMlp, d, mlpBias);
    linear(layerKey(l, "mlp.down_proj"), d, dMlp, mlpBias);
  }
  out.push({ key: "model.norm.weight", shape: [d], transposed: false });
  if (!tiedEmbeddings(config)) linear("lm_head", config.vocab_size, d, false);
  return out;
}
