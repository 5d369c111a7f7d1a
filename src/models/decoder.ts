// The forward pass of every supported decoder, read top to bottom like llama2.c's forward():
// embed, then per layer attention and MLP each added to the residual stream, then the final norm and
// the unembedding. architecture.ts says what differs between the architectures.
import * as tf from "@tensorflow/tfjs-core";
import { activationName, headDim, numKvHeads, type ModelConfig } from "./model-config.ts";
import { actName } from "../hooks.ts";
import { layerKey, slidingLayers, type Architecture } from "./architecture.ts";
import { matMul } from "./matmul.ts";
import { nativeLinear, nativeRows, type NativeMatrix } from "../blas/native-matrix.ts";
import { fusedAttention, fusedAttentionKernel, fusedKernels, fusedRmsNorm, fusedRope } from "./fused.ts";
import { applyRope, ropeFor, ropeTables, type Rope } from "./rope.ts";
import { roleKeys } from "./tensors.ts";

/** The weights, by checkpoint key, in the layouts that the type keeps apart. */
export interface Params {
  /** Linear weights held transposed, [in_features, out_features], so that x @ W needs no transposeB. */
  transposed: Record<string, tf.Tensor2D>;
  /**
   * Every other weight as the checkpoint stores it: embedding and lm_head [vocab, d_model], norms, biases;
   * and linear weights [out_features, in_features] when the memory plan holds them so (see memory.ts).
   */
  stored: Record<string, tf.Tensor>;
  /**
   * The matrices held outside the wasm heap as stored (linear weights [out, in], embedding and unembedding
   * [vocab, d_model]), multiplied where they lie by the native BLAS path; absent otherwise.
   */
  native?: Record<string, NativeMatrix>;
  /** Low-rank adapters beside some linear weights, by the weight's key (LoRA training; absent otherwise). */
  adapters?: Record<string, LinearAdapter>;
}

/**
 * Something added beside a frozen linear weight W [out, in] (LoRA's low-rank update while healing, in
 * heal/lora.ts): the layer computes W x + delta(x).
 */
export interface LinearAdapter {
  /** What the adapter adds for input rows [rows, in]: [rows, out]. */
  delta(rows: tf.Tensor2D): tf.Tensor2D;
}

/**
 * Keys and values of past positions, per layer: [batch, kv_heads, room, head_dim], of which the first `lengths[l]`
 * positions are filled (a decoding step on the native path writes its keys and values into the room in place).
 */
export interface KvCache {
  keys: tf.Tensor4D[];
  values: tf.Tensor4D[];
  lengths: number[];
}

/** Positions of room a KV cache is grown by at a time, past those it needs now. */
export const CACHE_ROOM = 64;

/** The first `past` positions of a cache tensor [batch, kv_heads, room, head_dim]: the tensor itself when it has no room. */
function filledPositions(t: tf.Tensor4D, past: number): tf.Tensor4D {
  return t.shape[2] === past ? t : tf.slice(t, [0, 0, 0, 0], [-1, -1, past, -1]);
}

/**
 * Make room for `room` positions in layer l's cache, keeping its first `past`: new tensors, held by the cache alone
 * (the compiled attention writes into them in place).
 */
function growCache(cache: KvCache, l: number, past: number, room: number, [batch, kvHeads, , headDim]: number[]): void {
  for (const part of [cache.keys, cache.values]) {
    const old = part[l];
    part[l] = tf.keep(
      tf.tidy(() => {
        const empty = tf.zeros([batch, kvHeads, room - past, headDim]) as tf.Tensor4D;
        return old && past > 0 ? tf.concat([filledPositions(old, past), empty], 2) : empty;
      }),
    );
    old?.dispose();
  }
}

/** Called at every hook point; returns the activation to continue with. */
export type HookRunner = (name: string, layer: number | undefined, activation: tf.Tensor) => tf.Tensor;

export interface DecoderInputs {
  /** Token ids of this call, [batch][pos]. */
  inputIds: number[][];
  /** 1 on real tokens, 0 on padding, over the cached positions then this call's: [batch][past + pos]. */
  attentionMask: number[][];
}

export interface DecoderOptions {
  runHook: HookRunner;
  /** Updated in place when given: each layer's keys and values grow by `pos`. */
  kvCache?: KvCache;
  /** Compute logits at every position, or only at the last (generation, scores). */
  logits: "all" | "last";
  /** Free each layer's intermediates as soon as it is done (off while recording gradients). */
  tidyLayers: boolean;
}

/** Added to the attention scores of keys a query may not see. */
const MASKED = -1e9;

/** What one layer's attention needs: its RoPE and its window (Infinity: every earlier key). */
interface LayerAttention {
  rope: Rope;
  window: number;
}

export class Decoder {
  readonly dModel: number;
  readonly nLayers: number;
  readonly nHeads: number;
  readonly nKvHeads: number;
  readonly dHead: number;
  private readonly layers: LayerAttention[];
  private readonly activation: (x: tf.Tensor) => tf.Tensor;
  private readonly keys: ReturnType<typeof roleKeys>;

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
    this.activation = arch.activations[activationName(config)];
    this.keys = roleKeys(arch);
    const global = ropeFor(config);
    const local = arch.localRopeBase ? ropeFor(config, { theta: arch.localRopeBase(config) }) : global;
    this.layers = slidingLayers(config, arch).map((sliding) => {
      const window = sliding && config.sliding_window != null ? config.sliding_window : Infinity;
      return { rope: sliding ? local : global, window };
    });
  }

  private key(rest: string): string {
    return this.arch.keyPrefix + rest;
  }

  private stored(rest: string): tf.Tensor {
    const t = this.params.stored[this.key(rest)];
    if (!t) throw new Error(`missing weight ${this.key(rest)}`);
    return t;
  }

  /** x @ W^T (+ b) for x [batch, pos, in] and W [out, in], held transposed or as stored. */
  private linear(x: tf.Tensor3D, rest: string): tf.Tensor3D {
    const key = this.key(`${rest}.weight`);
    const native = this.params.native?.[key]; // [out, in], outside the heap
    const adapter = this.params.adapters?.[key];
    const bias = this.params.stored[this.key(`${rest}.bias`)] as tf.Tensor1D | undefined;
    if (native && !adapter) return nativeLinear(x, native, bias); // [batch, pos, out], bias added
    const [batch, pos, inF] = x.shape;
    const rows = tf.reshape(x, [batch * pos, inF]) as tf.Tensor2D; // [batch * pos, in]
    const wT = this.params.transposed[key]; // [in, out]
    const w = this.params.stored[key] as tf.Tensor2D | undefined; // [out, in]
    if (!wT && !w && !native) throw new Error(`missing weight ${key}`);
    // As stored, (W @ x^T)^T: no packed copy of W on stock wasm, at the cost of speed.
    // [batch * pos, out]
    let y: tf.Tensor2D = native ? nativeLinear(rows, native) : wT ? matMul(rows, wT) : tf.transpose(matMul(w!, tf.transpose(rows)));
    if (adapter) y = tf.add(y, adapter.delta(rows)); // [batch * pos, out]
    if (bias) y = tf.add(y, bias);
    return tf.reshape(y, [batch, pos, y.shape[1]]);
  }

  /** x / rms(x) * (normOffset + w) over the last axis of x. */
  private rmsNorm<T extends tf.Tensor>(x: T, rest: string): T {
    if (fusedKernels()) return fusedRmsNorm(x, this.stored(rest) as tf.Tensor1D, this.config.rms_norm_eps, this.arch.normOffset ?? 0);
    const variance = tf.mean(tf.square(x), -1, true); // [..., 1]
    const normed = tf.mul(x, tf.rsqrt(tf.add(variance, this.config.rms_norm_eps))); // [..., width]
    const w = this.stored(rest); // [width]
    return tf.mul(normed, this.arch.normOffset ? tf.add(w, this.arch.normOffset) : w) as T;
  }

  /** [batch, pos, heads * head_dim] -> [batch, heads, pos, head_dim] */
  private splitHeads(x: tf.Tensor, heads: number): tf.Tensor4D {
    const [batch, pos] = x.shape;
    // One position (a decode step): the swap of axes moves no value, a reshape does it.
    if (pos === 1) return tf.reshape(x, [batch, heads, 1, this.dHead]);
    return tf.transpose(tf.reshape(x, [batch, pos, heads, this.dHead]), [0, 2, 1, 3]);
  }

  private attention(
    x: tf.Tensor3D,
    l: number,
    masks: Map<number, tf.Tensor4D>,
    rope: { cos: tf.Tensor4D; sin: tf.Tensor4D },
    kvCache?: KvCache,
  ): tf.Tensor3D {
    const [batch, pos] = x.shape;
    const group = this.nHeads / this.nKvHeads;
    const qDim = this.nHeads * this.dHead;
    const kvDim = this.nKvHeads * this.dHead;
    const [qx, kx, vx] = this.arch.fusedProjections
      ? tf.split(this.linear(x, layerKey(l, "self_attn.qkv_proj")), [qDim, kvDim, kvDim], 2) // [batch, pos, q | k | v]
      : ["q_proj", "k_proj", "v_proj"].map((p) => this.linear(x, layerKey(l, `self_attn.${p}`)));
    let q = this.splitHeads(qx, this.nHeads); // [batch, heads, pos, head_dim]
    let k = this.splitHeads(kx, this.nKvHeads); // [batch, kv_heads, pos, head_dim]
    let v = this.splitHeads(vx, this.nKvHeads); // [batch, kv_heads, pos, head_dim]
    if (this.arch.qkNorm) {
      q = this.rmsNorm(q, layerKey(l, "self_attn.q_norm.weight"));
      k = this.rmsNorm(k, layerKey(l, "self_attn.k_norm.weight"));
    }
    const rotate = fusedKernels() ? fusedRope : applyRope;
    q = rotate(q, rope.cos, rope.sin);
    k = rotate(k, rope.cos, rope.sin);
    const scale = this.arch.attentionScale(this.config);
    const mask = masks.get(this.layers[l].window)!; // [batch, 1, pos, keys]
    const past = kvCache?.lengths[l] ?? 0;
    if (kvCache && mask.shape[3] !== past + pos)
      throw new Error(
        `layer ${l}: the KV cache holds ${past} positions and the step ${pos}, but the attention mask covers ${mask.shape[3]}`,
      );
    // A decoding step: the scores, softmax and weighted values as one compiled kernel, heads merged; the step's keys
    // and values written into the cache in place, room made CACHE_ROOM positions at a time.
    if (pos === 1 && fusedAttentionKernel()) {
      const cap = this.config.attn_logit_softcapping ?? 0;
      if (!kvCache) return this.linear(fusedAttention(q, k, v, mask, scale, cap), layerKey(l, "self_attn.o_proj"));
      if ((kvCache.keys[l]?.shape[2] ?? 0) < past + pos) growCache(kvCache, l, past, past + pos + CACHE_ROOM, k.shape);
      const merged = fusedAttention(q, kvCache.keys[l], kvCache.values[l], mask, scale, cap, { keys: k, values: v });
      kvCache.lengths[l] = past + pos;
      return this.linear(merged, layerKey(l, "self_attn.o_proj"));
    }
    if (kvCache) {
      const [pastK, pastV] = [kvCache.keys[l], kvCache.values[l]]; // [batch, kv_heads, room, head_dim]
      if (pastK) {
        k = tf.concat([filledPositions(pastK, past), k], 2); // [batch, kv_heads, past + pos, head_dim]
        v = tf.concat([filledPositions(pastV, past), v], 2);
        pastK.dispose();
        pastV.dispose();
      }
      kvCache.keys[l] = tf.keep(k);
      kvCache.values[l] = tf.keep(v);
      kvCache.lengths[l] = past + pos;
    }
    const keys = k.shape[2];
    // Grouped-query attention: each kv head serves `group` query heads.
    // [batch * kv_heads, group * pos, head_dim]
    const qGrouped = tf.reshape<tf.Rank.R3>(q, [batch * this.nKvHeads, group * pos, this.dHead]);
    // [batch * kv_heads, head_dim, keys]
    const kT = tf.reshape<tf.Rank.R3>(tf.transpose(k, [0, 1, 3, 2]), [batch * this.nKvHeads, this.dHead, keys]);
    // [batch, heads, pos, keys]
    let scores = tf.mul(tf.reshape(matMul(qGrouped, kT), [batch, this.nHeads, pos, keys]), scale);
    const cap = this.config.attn_logit_softcapping;
    if (cap) scores = tf.mul(tf.tanh(tf.div(scores, cap)), cap);
    const pattern = tf.softmax(tf.add(scores, mask), -1); // [batch, heads, pos, keys]
    const patternGrouped = tf.reshape<tf.Rank.R3>(pattern, [batch * this.nKvHeads, group * pos, keys]);
    // [batch * kv_heads, group * pos, head_dim]
    const z = matMul(patternGrouped, tf.reshape<tf.Rank.R3>(v, [batch * this.nKvHeads, keys, this.dHead]));
    // [batch, pos, heads * head_dim] (one position: a reshape, as in splitHeads)
    const merged = (
      pos === 1
        ? tf.reshape(z, [batch, 1, qDim])
        : tf.reshape(tf.transpose(tf.reshape(z, [batch, this.nHeads, pos, this.dHead]), [0, 2, 1, 3]), [batch, pos, qDim])
    ) as tf.Tensor3D;
    return this.linear(merged, layerKey(l, "self_attn.o_proj")); // [batch, pos, d_model]
  }

  private mlp(x: tf.Tensor3D, l: number): tf.Tensor3D {
    const dMlp = this.config.intermediate_size;
    const [gate, up] = this.arch.fusedProjections
      ? tf.split(this.linear(x, layerKey(l, "mlp.gate_up_proj")), [dMlp, dMlp], 2) // [batch, pos, d_mlp] each
      : [this.linear(x, layerKey(l, "mlp.gate_proj")), this.linear(x, layerKey(l, "mlp.up_proj"))];
    return this.linear(tf.mul(this.activation(gate), up) as tf.Tensor3D, layerKey(l, "mlp.down_proj")); // [batch, pos, d_model]
  }

  /** Logits [batch, pos, d_vocab] (pos is 1 with `logits: "last"`). */
  forward(inputs: DecoderInputs, options: DecoderOptions): tf.Tensor3D {
    const { runHook, kvCache } = options;
    const hook = (name: string, layer: number | undefined, x: tf.Tensor3D) => runHook(name, layer, x) as tf.Tensor3D;
    const tidy = <T extends tf.Tensor>(fn: () => T): T => (options.tidyLayers ? tf.tidy(fn) : fn());
    const batchInputs = attentionInputs(inputs, new Set(this.layers.map((a) => a.window)));
    // [batch, 1, pos, rotary_dim] each
    const ropes = new Map([...new Set(this.layers.map((a) => a.rope))].map((r) => [r, ropeTables(r, batchInputs.positionIds)]));
    try {
      let resid = tidy(() => {
        const nativeEmbedding = this.params.native?.[this.keys.embedding];
        const embed = nativeEmbedding
          ? (tf.reshape(nativeRows(nativeEmbedding, inputs.inputIds.flat()), [
              inputs.inputIds.length,
              inputs.inputIds[0].length,
              this.dModel,
            ]) as tf.Tensor3D)
          : embedTokens(this.stored("model.embed_tokens.weight") as tf.Tensor2D, batchInputs.inputIds); // [batch, pos, d_model]
        // Gemma scales by sqrt(hidden_size) rounded to the model's dtype, as Hugging Face does.
        return hook(actName("embed"), undefined, this.arch.scaleEmbeddings ? tf.mul(embed, Math.fround(Math.sqrt(this.dModel))) : embed);
      });
      for (let l = 0; l < this.nLayers; l++) {
        const next = tidy(() => {
          const residPre = hook(actName("resid_pre", l), l, resid); // [batch, pos, d_model]
          let attnOut = this.attention(
            this.rmsNorm(residPre, layerKey(l, "input_layernorm.weight")),
            l,
            batchInputs.masks,
            ropes.get(this.layers[l].rope)!,
            kvCache,
          );
          if (this.arch.sandwichNorms) attnOut = this.rmsNorm(attnOut, layerKey(l, "post_attention_layernorm.weight"));
          attnOut = hook(actName("attn_out", l), l, attnOut); // what attention adds to the residual stream
          const residMid = hook(actName("resid_mid", l), l, tf.add(residPre, attnOut)); // [batch, pos, d_model]
          let mlpOut = this.mlp(
            this.rmsNorm(
              residMid,
              layerKey(l, this.arch.sandwichNorms ? "pre_feedforward_layernorm.weight" : "post_attention_layernorm.weight"),
            ),
            l,
          );
          if (this.arch.sandwichNorms) mlpOut = this.rmsNorm(mlpOut, layerKey(l, "post_feedforward_layernorm.weight"));
          mlpOut = hook(actName("mlp_out", l), l, mlpOut);
          return hook(actName("resid_post", l), l, tf.add(residMid, mlpOut)); // [batch, pos, d_model]
        });
        if (options.tidyLayers && next !== resid) resid.dispose();
        resid = next;
      }
      const logits = tidy(() => {
        const [batch, pos] = resid.shape;
        // [batch, pos', d_model]
        const finalResid = options.logits === "last" ? tf.slice(resid, [0, pos - 1, 0], [batch, 1, this.dModel]) : resid;
        const normed = hook(actName("normalized"), undefined, this.rmsNorm(finalResid, "model.norm.weight"));
        const [b, p, d] = normed.shape;
        const rows = tf.reshape(normed, [b * p, d]) as tf.Tensor2D;
        const native = this.params.native?.[this.keys.unembedding] ?? this.params.native?.[this.keys.embedding];
        // lm_head, or the embedding it is tied to, as stored [vocab, d_model]: E @ x^T, so no transposed copy is held.
        const unembed = () => (this.params.stored[this.keys.unembedding] ?? this.stored("model.embed_tokens.weight")) as tf.Tensor2D;
        // [batch * pos', d_vocab]
        const logitRows = native ? nativeLinear(rows, native) : tf.transpose(matMul(unembed(), tf.transpose(rows) as tf.Tensor2D));
        let out = tf.reshape(logitRows, [b, p, this.config.vocab_size]) as tf.Tensor3D; // [batch, pos', d_vocab]
        const cap = this.config.final_logit_softcapping;
        if (cap) out = tf.mul(tf.tanh(tf.div(out, cap)), cap);
        return out;
      });
      if (options.tidyLayers) resid.dispose();
      return logits;
    } finally {
      batchInputs.inputIds.dispose();
      for (const m of batchInputs.masks.values()) m.dispose();
      for (const { cos, sin } of ropes.values()) tf.dispose([cos, sin]);
    }
  }
}

/**
 * Token ids as a tensor, the position id of each token in its own sequence (padding excluded, so a
 * left-padded sequence sees the positions it would alone), and one additive attention mask
 * [batch, 1, pos, past + pos] per window size: causal, blind to padding, and for a sliding window of w
 * keys, blind to keys w or more positions back.
 */
export function attentionInputs(
  inputs: DecoderInputs,
  windows: ReadonlySet<number>,
): { inputIds: tf.Tensor2D; positionIds: number[][]; masks: Map<number, tf.Tensor4D> } {
  const rows = inputs.inputIds.length;
  const pos = inputs.inputIds[0].length;
  const keys = inputs.attentionMask[0].length;
  const past = keys - pos;
  const positionIds = inputs.attentionMask.map((mask) => {
    const ids: number[] = [];
    let seen = 0;
    for (let j = 0; j < keys; j++) {
      if (mask[j]) seen++;
      if (j >= past) ids.push(Math.max(seen - 1, 0));
    }
    return ids;
  });
  const masks = new Map<number, tf.Tensor4D>();
  for (const window of windows) {
    const bias = new Float32Array(rows * pos * keys);
    for (let b = 0; b < rows; b++) {
      for (let t = 0; t < pos; t++) {
        const query = past + t;
        for (let j = 0; j < keys; j++) {
          const allowed = j <= query && query - j < window && inputs.attentionMask[b][j] === 1;
          bias[(b * pos + t) * keys + j] = allowed ? 0 : MASKED;
        }
      }
    }
    masks.set(window, tf.tensor4d(bias, [rows, 1, pos, keys]));
  }
  return { inputIds: tf.tensor2d(inputs.inputIds, [rows, pos], "int32"), positionIds, masks };
}

/**
 * Embedding lookup, E[ids]. Its gradient is written as a one-hot matMul because the wasm backend
 * lacks the UnsortedSegmentSum kernel that gather's built-in gradient needs.
 */
function embedTokens(embedding: tf.Tensor2D, ids: tf.Tensor2D): tf.Tensor3D {
  const lookup = tf.customGrad(((table: tf.Tensor2D, tokens: tf.Tensor2D, save: tf.GradSaveFunc) => {
    save([tokens]);
    const [batch, pos] = (tokens as tf.Tensor2D).shape;
    // [batch, pos, d_model]
    const value = tf.reshape(tf.gather(table, tf.reshape(tokens, [-1])), [batch, pos, (table as tf.Tensor2D).shape[1]]);
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
