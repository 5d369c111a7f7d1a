// Rotary position embeddings as Hugging Face computes them (rotate_half convention): plain, `linear`
// and Llama 3.1's `llama3` frequency scaling, Phi-3's `longrope` (short or long factors, chosen per
// batch, and an attention factor on cos and sin), partial rotation (partial_rotary_factor), and Gemma 3's
// separate base for its sliding-window layers.
import * as tf from "@tensorflow/tfjs-core";
import { rotaryDim, type ModelConfig } from "./model-config.ts";

export interface Rope {
  /** Dimensions of each head that are rotated (the first ones; the rest pass unchanged). */
  rotaryDim: number;
  /** Inverse frequencies [rotaryDim / 2], float64 (longrope: the short-context set). */
  invFreq: Float64Array;
  /** longrope: the frequencies used when a batch reaches past `after` positions. */
  long?: { invFreq: Float64Array; after: number };
  /** cos and sin are multiplied by this (longrope's attention factor; 1 otherwise). */
  attentionFactor: number;
}

const baseFrequencies = (theta: number, dim: number) => Float64Array.from({ length: dim / 2 }, (_, i) => 1 / theta ** ((2 * i) / dim));

/**
 * The RoPE of one kind of layer: with `local`, Gemma 3's sliding-window layers (base
 * rope_local_base_freq, no scaling); otherwise rope_theta with config.rope_scaling.
 */
export function ropeFor(config: ModelConfig, local?: { theta: number }): Rope {
  const dim = rotaryDim(config);
  if (local) return { rotaryDim: dim, invFreq: baseFrequencies(local.theta, dim), attentionFactor: 1 };
  const invFreq = baseFrequencies(config.rope_theta, dim);
  const scaling = config.rope_scaling;
  const type = scaling ? (scaling.rope_type ?? scaling.type) : "default";
  if (!scaling || type === "default") return { rotaryDim: dim, invFreq, attentionFactor: 1 };
  if (type === "linear") return { rotaryDim: dim, invFreq: invFreq.map((f) => f / scaling.factor!), attentionFactor: 1 };
  if (type === "longrope") {
    const { original, attentionFactor } = longropeParameters(config);
    const scaled = (factors: number[]) => invFreq.map((f, i) => f / factors[i]);
    return {
      rotaryDim: dim,
      invFreq: scaled(scaling.short_factor!),
      long: { invFreq: scaled(scaling.long_factor!), after: original },
      attentionFactor,
    };
  }
  const factors = llama3FrequencyFactors(config, dim);
  return {
    rotaryDim: dim,
    attentionFactor: 1,
    invFreq: invFreq.map((f, i) => f / factors[i]),
  };
}

/**
 * Phi-3's longrope: the pretrained context (original_max_position_embeddings, which Phi-3 keeps beside
 * rope_scaling), the factor derived from it, and the attention factor on cos and sin, as Hugging Face
 * computes them.
 */
export function longropeParameters(config: ModelConfig): { original: number; factor: number; attentionFactor: number } {
  const scaling = config.rope_scaling!;
  const original =
    config.original_max_position_embeddings ?? scaling.original_max_position_embeddings ?? config.max_position_embeddings ?? 4096;
  const factor = config.original_max_position_embeddings ? (config.max_position_embeddings ?? original) / original : (scaling.factor ?? 1);
  const attentionFactor = scaling.attention_factor ?? (factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(original)));
  return { original, factor, attentionFactor };
}

/**
 * Llama 3.1's `llama3` scaling as one divisor per rotated frequency (rotaryDim / 2 of them): long
 * wavelengths slowed down by `factor`, short ones kept, the band between interpolated. llama.cpp reads the
 * same divisors from a GGUF file's rope_freqs tensor.
 */
export function llama3FrequencyFactors(config: ModelConfig, dim = rotaryDim(config)): Float64Array {
  const scaling = config.rope_scaling!;
  const factor = scaling.factor ?? 8;
  const low = scaling.low_freq_factor ?? 1;
  const high = scaling.high_freq_factor ?? 4;
  const oldContext = scaling.original_max_position_embeddings ?? 8192;
  return baseFrequencies(config.rope_theta, dim).map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < oldContext / high) return 1;
    if (wavelen > oldContext / low) return factor;
    const smooth = (oldContext / wavelen - low) / (high - low);
    return 1 / ((1 - smooth) / factor + smooth);
  });
}

/**
 * cos and sin for position ids [batch][pos], each [batch, 1, pos, rotaryDim]. longrope takes its long
 * factors for the whole batch when any position id reaches past the pretrained context, as Hugging Face does.
 */
export function ropeTables(rope: Rope, positionIds: number[][]): { cos: tf.Tensor4D; sin: tf.Tensor4D } {
  const batch = positionIds.length;
  const pos = positionIds[0]?.length ?? 0;
  const longest = Math.max(0, ...positionIds.flat()) + 1;
  const invFreq = rope.long && longest > rope.long.after ? rope.long.invFreq : rope.invFreq;
  const half = invFreq.length;
  const dim = rope.rotaryDim;
  const cos = new Float32Array(batch * pos * dim);
  const sin = new Float32Array(batch * pos * dim);
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < pos; t++) {
      const base = (b * pos + t) * dim;
      for (let i = 0; i < half; i++) {
        const angle = positionIds[b][t] * invFreq[i]; // float64, then rounded once
        cos[base + i] = cos[base + half + i] = Math.cos(angle) * rope.attentionFactor;
        sin[base + i] = sin[base + half + i] = Math.sin(angle) * rope.attentionFactor;
      }
    }
  }
  return { cos: tf.tensor4d(cos, [batch, 1, pos, dim]), sin: tf.tensor4d(sin, [batch, 1, pos, dim]) };
}

/** x * cos + rotate_half(x) * sin on the first rotaryDim dimensions of x [batch, heads, pos, head_dim]. */
export function applyRope(x: tf.Tensor4D, cos: tf.Tensor4D, sin: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const dim = cos.shape[3];
    const headDim = x.shape[3];
    // [batch, heads, pos, dim], [.., head_dim - dim]
    const [rot, pass] = dim === headDim ? [x, undefined] : tf.split(x, [dim, headDim - dim], 3);
    const [x1, x2] = tf.split(rot, [dim / 2, dim / 2], 3); // [batch, heads, pos, dim / 2] each
    const rotated = tf.concat([tf.neg(x2), x1], 3); // [batch, heads, pos, dim]
    const out = tf.add(tf.mul(rot, cos), tf.mul(rotated, sin)) as tf.Tensor4D;
    return (pass ? tf.concat([out, pass], 3) : out) as tf.Tensor4D;
  });
}
