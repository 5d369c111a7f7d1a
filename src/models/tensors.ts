// Every tensor a checkpoint must hold for its config.json, with the stored shape and how the engine
// holds it. Loading is a strict key-by-key match against this list.
import { headDim, numKvHeads, tiedEmbeddings, type ModelConfig } from "./model-config.ts";
import { layerKey, type Architecture } from "./architecture.ts";

export interface ExpectedTensor {
  /** The checkpoint's own key, e.g. `model.layers.3.mlp.down_proj.weight`. */
  key: string;
  /** Shape as stored in the checkpoint (PyTorch's [out_features, in_features] for linear weights). */
  shape: number[];
  /** A linear layer's weight: held transposed in memory, [in, out], so that x @ W needs no transposeB. */
  linear: boolean;
}

export function expectedTensors(arch: Architecture, config: ModelConfig): ExpectedTensor[] {
  const d = config.hidden_size;
  const dMlp = config.intermediate_size;
  const dHead = headDim(config);
  const qDim = config.num_attention_heads * dHead;
  const kvDim = numKvHeads(config) * dHead;
  const mlpBias = config.mlp_bias ?? false;
  const out: ExpectedTensor[] = [];
  const key = (k: string) => arch.keyPrefix + k;
  const vector = (k: string, size: number) => out.push({ key: key(k), shape: [size], linear: false });
  const linear = (k: string, outF: number, inF: number, bias: boolean) => {
    out.push({ key: key(`${k}.weight`), shape: [outF, inF], linear: true });
    if (bias) vector(`${k}.bias`, outF);
  };
  out.push({ key: key("model.embed_tokens.weight"), shape: [config.vocab_size, d], linear: false });
  for (let l = 0; l < config.num_hidden_layers; l++) {
    const at = (rest: string) => layerKey(l, rest);
    vector(at("input_layernorm.weight"), d);
    if (arch.fusedProjections) linear(at("self_attn.qkv_proj"), qDim + 2 * kvDim, d, arch.qkvBias(config));
    else {
      linear(at("self_attn.q_proj"), qDim, d, arch.qkvBias(config));
      linear(at("self_attn.k_proj"), kvDim, d, arch.qkvBias(config));
      linear(at("self_attn.v_proj"), kvDim, d, arch.qkvBias(config));
    }
    if (arch.qkNorm) {
      vector(at("self_attn.q_norm.weight"), dHead);
      vector(at("self_attn.k_norm.weight"), dHead);
    }
    linear(at("self_attn.o_proj"), d, qDim, arch.oBias(config));
    vector(at("post_attention_layernorm.weight"), d);
    if (arch.sandwichNorms) {
      vector(at("pre_feedforward_layernorm.weight"), d);
      vector(at("post_feedforward_layernorm.weight"), d);
    }
    if (arch.fusedProjections) linear(at("mlp.gate_up_proj"), 2 * dMlp, d, mlpBias);
    else {
      linear(at("mlp.gate_proj"), dMlp, d, mlpBias);
      linear(at("mlp.up_proj"), dMlp, d, mlpBias);
    }
    linear(at("mlp.down_proj"), d, dMlp, mlpBias);
  }
  vector("model.norm.weight", d);
  // The unembedding is held as stored, [vocab, d_model], like the embedding it may be tied to.
  if (!tiedEmbeddings(config)) out.push({ key: key("lm_head.weight"), shape: [config.vocab_size, d], linear: false });
  return out;
}

/** Checkpoint keys the engine reads by role, under the architecture's prefix. */
export function roleKeys(arch: Architecture) {
  return {
    embedding: arch.keyPrefix + "model.embed_tokens.weight",
    unembedding: arch.keyPrefix + "lm_head.weight",
    finalNorm: arch.keyPrefix + "model.norm.weight",
  };
}
