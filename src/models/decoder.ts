// The forward pass of a Llama-family decoder, read top to bottom like llama2.c's forward().
// Every supported architecture runs through here; architecture.ts says what differs.
import * as tf from "@tensorflow/tfjs-core";
import { headDim, numKvHeads, type ModelConfig } from "../config.ts";
import { actName } from "../hooks.ts";
import { layerKey, type Architecture } from "./architecture.ts";
import { matMul } from "./matmul.ts";
import { applyRope, inverseFrequencies, ropeTables } from "./rope.ts";

/** Weights by checkpoint key. Linear weights are held transposed, [in_features, out_features]. */
export type Params = Record<string, tf.Tensor>;

/** Keys and values of past positions, per layer: [batch, kv_heads, past, head_dim]. */
export interface KvCache {
  keys: tf.Tensor4D[];
  values: tf.Tensor4D[];
}

/** Called at every hook point; returns the activation to continue with. */
export type HookRunner = (name: string, layer: number | undefined, activation: tf.Tensor) => tf.Tensor;

export interface DecoderInputs {
  inputIds: tf.Tensor2D; // [batch, pos] int32
  /** Position of each token in its own sequence (padding excluded): [batch][pos]. */
  positionIds: number[][];
  /** 0 where a query may attend a key, a large negative number where not: [batch, 1, pos, past + pos]. */
  maskBias: tf.Tensor4D;
}

export interface DecoderOptions {
  runHook: HookRunner;
  /** Updated in place when given: each layer's keys and values grow by `pos`. */
  kvCache?: KvCache;
  /** Compute logits at every position, or only at the last (generation, selection). */
  logits: "all" | "last";
  /** Free each layer's intermediates as soon as it is done (off while recording gradients). */
  tidyLayers: boolean;
}

export class Decoder {
  readonly dModel: number;
  readonly nLayers: number;
  readonly nHeads: number;
  readonly nKvHeads: number;
  readonly dHead: number;
  private readonly invFreq: Float64Array;

  constructor(
    readonly config: ModelConfig,
    readonly arch: Architecture,
    public params: Params,
  ) {
    this.dModel = config.hidden_size;
    this.nLayers = config.num_hidden_layers;
    this.nHeads = config.num_attention_heads;
    this.nKvHeads = numKvHeads(config);
    this.dHead = headDim(config);
    this.invFreq = inverseFrequencies(config);
  }

  private p(key: string): tf.Tensor {
    const t = this.params[key];
    if (!t) throw new Error(`missing weight ${key}`);
    return t;
  }

  /** x @ W (+ b) for x [batch, pos, in] and W held as [in, out]. */
  private linear(x: tf.Tensor3D, key: string): tf.Tensor3D {
    const [batch, pos, inF] = x.shape;
    const w = this.p(`${key}.weight`) as tf.Tensor2D; // [in, out]
    let y: tf.Tensor2D = matMul(tf.reshape(x, [batch * pos, inF]) as tf.Tensor2D, w); // [batch * pos, out]
    const bias = this.params[`${key}.bias`];
    if (bias) y = tf.add(y, bias);
    return tf.reshape(y, [batch, pos, w.shape[1]]);
  }

  private rmsNorm(x: tf.Tensor3D, key: string): tf.Tensor3D {
    const eps = this.config.rms_norm_eps;
    const variance = tf.mean(tf.square(x), -1, true); // [batch, pos, 1]
    const normed = tf.mul(x, tf.rsqrt(tf.add(variance, eps))); // [batch, pos, d_model]
    const weight = this.arch.normOffset ? tf.add(this.p(key), this.arch.normOffset) : this.p(key); // [d_model]
    return tf.mul(normed, weight);
  }

  /** [batch, pos, heads * head_dim] -> [batch, heads, pos, head_dim] */
  private splitHeads(x: tf.Tensor3D, heads: number): tf.Tensor4D {
    const [batch, pos] = x.shape;
    return tf.transpose(tf.reshape(x, [batch, pos, heads, this.dHead]), [0, 2, 1, 3]);
  }

  private attention(x: tf.Tensor3D, l: number, inputs: DecoderInputs, cos: tf.Tensor4D, sin: tf.Tensor4D, kvCache?: KvCache): tf.Tensor3D {
    const [batch, pos] = x.shape;
    const group = this.nHeads / this.nKvHeads;
    const q = applyRope(this.splitHeads(this.linear(x, layerKey(l, "self_attn.q_proj")), this.nHeads), cos, sin); // [batch, heads, pos, head_dim]
    let k = applyRope(this.splitHeads(this.linear(x, layerKey(l, "self_attn.k_proj")), this.nKvHeads), cos, sin); // [batch, kv_heads, pos, head_dim]
    let v = this.splitHeads(this.linear(x, layerKey(l, "self_attn.v_proj")), this.nKvHeads); // [batch, kv_heads, pos, head_dim]
    if (kvCache) {
      const pastK = kvCache.keys[l];
      const pastV = kvCache.values[l];
      if (pastK) {
        k = tf.concat([pastK, k], 2); // [batch, kv_heads, past + pos, head_dim]
        v = tf.concat([pastV, v], 2);
        pastK.dispose();
        pastV.dispose();
      }
      kvCache.keys[l] = tf.keep(k);
      kvCache.values[l] = tf.keep(v);
    }
    const keys = k.shape[2];
    // Grouped-query attention: each kv head serves `group` query heads.
    const qGrouped = tf.reshape<tf.Rank.R3>(q, [batch * this.nKvHeads, group * pos, this.dHead]); // [batch * kv_heads, group * pos, head_dim]
    const kT = tf.reshape<tf.Rank.R3>(tf.transpose(k, [0, 1, 3, 2]), [batch * this.nKvHeads, this.dHead, keys]); // [batch * kv_heads, head_dim, keys]
    const scores = tf.reshape(matMul(qGrouped, kT), [batch, this.nHeads, pos, keys]); // [batch, heads, pos, keys]
    const scaled = tf.add(tf.mul(scores, 1 / Math.sqrt(this.dHead)), inputs.maskBias);
    const pattern = tf.softmax(scaled, -1); // [batch, heads, pos, keys]
    const patternGrouped = tf.reshape<tf.Rank.R3>(pattern, [batch * this.nKvHeads, group * pos, keys]);
    const z = matMul(patternGrouped, tf.reshape<tf.Rank.R3>(v, [batch * this.nKvHeads, keys, this.dHead])); // [batch * kv_heads, group * pos, head_dim]
    const merged = tf.reshape(tf.transpose(tf.reshape(z, [batch, this.nHeads, pos, this.dHead]), [0, 2, 1, 3]), [batch, pos, this.nHeads * this.dHead]) as tf.Tensor3D; // [batch, pos, heads * head_dim]
    return this.linear(merged, layerKey(l, "self_attn.o_proj")); // [batch, pos, d_model]
  }

  private mlp(x: tf.Tensor3D, l: number): tf.Tensor3D {
    const gate = this.arch.activation(this.linear(x, layerKey(l, "mlp.gate_proj"))); // [batch, pos, d_mlp]
    const up = this.linear(x, layerKey(l, "mlp.up_proj")); // [batch, pos, d_mlp]
    return this.linear(tf.mul(gate, up) as tf.Tensor3D, layerKey(l, "mlp.down_proj")); // [batch, pos, d_model]
  }

  /** Logits [batch, pos, d_vocab] (pos is 1 with `logits: "last"`). */
  forward(inputs: DecoderInputs, options: DecoderOptions): tf.Tensor3D {
    const { runHook, kvCache } = options;
    const hook = (name: string, layer: number | undefined, x: tf.Tensor3D) => runHook(name, layer, x) as tf.Tensor3D;
    const tidy = <T extends tf.Tensor>(fn: () => T): T => (options.tidyLayers ? tf.tidy(fn) : fn());
    const { cos, sin } = ropeTables(this.invFreq, inputs.positionIds); // [batch, 1, pos, head_dim] each

    let resid = tidy(() => {
      const embed = embedTokens(this.p("model.embed_tokens.weight") as tf.Tensor2D, inputs.inputIds); // [batch, pos, d_model]
      const scale = this.arch.embedScale(this.config);
      return hook(actName("embed"), undefined, scale === 1 ? embed : tf.mul(embed, scale));
    });
    for (let l = 0; l < this.nLayers; l++) {
      const next = tidy(() => {
        const residPre = hook(actName("resid_pre", l), l, resid); // [batch, pos, d_model]
        const attnIn = this.rmsNorm(residPre, layerKey(l, "input_layernorm.weight"));
        const attnOut = hook(actName("attn_out", l), l, this.attention(attnIn, l, inputs, cos, sin, kvCache));
        const residMid = hook(actName("resid_mid", l), l, tf.add(residPre, attnOut)); // [batch, pos, d_model]
        const mlpIn = this.rmsNorm(residMid, layerKey(l, "post_attention_layernorm.weight"));
        const mlpOut = hook(actName("mlp_out", l), l, this.mlp(mlpIn, l));
        return hook(actName("resid_post", l), l, tf.add(residMid, mlpOut)); // [batch, pos, d_model]
      });
      if (options.tidyLayers && next !== resid) resid.dispose();
      resid = next;
    }
    const logits = tidy(() => {
      const [batch, pos] = resid.shape;
      const finalResid = options.logits === "last" ? tf.slice(resid, [0, pos - 1, 0], [batch, 1, this.dModel]) : resid; // [batch, pos', d_model]
      const normed = hook(actName("normalized"), undefined, this.rmsNorm(finalResid, "model.norm.weight"));
      const unembed = this.p("lm_head.weight"); // [d_model, d_vocab]; a transposed copy of the embedding when tied
      const [b, p, d] = normed.shape;
      return tf.reshape(matMul(tf.reshape(normed, [b * p, d]) as tf.Tensor2D, unembed as tf.Tensor2D), [b, p, this.config.vocab_size]) as tf.Tensor3D; // [batch, pos', d_vocab]
    });
    if (options.tidyLayers) {
      resid.dispose();
      cos.dispose();
      sin.dispose();
    }
    return logits;
  }
}

/**
 * Embedding lookup, E[ids]. Its gradient is written as a one-hot matMul because the wasm backend
 * lacks the UnsortedSegmentSum kernel that gather's built-in gradient needs.
 */
function embedTokens(embedding: tf.Tensor2D, ids: tf.Tensor2D): tf.Tensor3D {
  const lookup = tf.customGrad(((table: tf.Tensor2D, tokens: tf.Tensor2D, save: tf.GradSaveFunc) => {
    save([tokens]);
    const [batch, pos] = (tokens as tf.Tensor2D).shape;
    const value = tf.reshape(tf.gather(table, tf.reshape(tokens, [-1])), [batch, pos, (table as tf.Tensor2D).shape[1]]); // [batch, pos, d_model]
    const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [vocab, dModel] = (table as tf.Tensor2D).shape;
      const oneHot = tf.oneHot(tf.reshape(saved[0], [-1]) as tf.Tensor1D, vocab); // [batch * pos, vocab]
      const dTable = tf.matMul(tf.transpose(oneHot.toFloat()), tf.reshape(dy, [-1, dModel]) as tf.Tensor2D); // [vocab, d_model]
      return [dTable, tf.zerosLike(saved[0])];
    };
    return { value, gradFunc };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return lookup(embedding, ids) as tf.Tensor3D;
}
