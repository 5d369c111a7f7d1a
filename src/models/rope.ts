// Rotary position embeddings, as Hugging Face computes them (rotate_half convention),
// including Llama 3.1's `llama3` frequency scaling.
import * as tf from "@tensorflow/tfjs-core";
import { headDim, type ModelConfig } from "../config.ts";

/** Inverse frequencies, [head_dim / 2], in float64. */
export function inverseFrequencies(config: ModelConfig): Float64Array {
  const dim = headDim(config);
  const invFreq = new Float64Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) invFreq[i] = 1 / config.rope_theta ** ((2 * i) / dim);
  const scaling = config.rope_scaling;
  if (!scaling || (scaling.rope_type ?? scaling.type) !== "llama3") return invFreq;
  const factor = scaling.factor ?? 8;
  const lowFreqFactor = scaling.low_freq_factor ?? 1;
  const highFreqFactor = scaling.high_freq_factor ?? 4;
  const oldContext = scaling.original_max_position_embeddings ?? 8192;
  const lowFreqWavelen = oldContext / lowFreqFactor;
  const highFreqWavelen = oldContext / highFreqFactor;
  for (let i = 0; i < invFreq.length; i++) {
    const wavelen = (2 * Math.PI) / invFreq[i];
    if (wavelen > lowFreqWavelen) invFreq[i] /= factor; // long wavelengths: slowed down fully
    else if (wavelen >= highFreqWavelen) {
      // medium wavelengths: interpolate between scaled and unscaled
      const smooth = (oldContext / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
      invFreq[i] = (1 - smooth) * (invFreq[i] / factor) + smooth * invFreq[i];
    }
  }
  return invFreq;
}

/** cos and sin tables for given position ids ([batch][pos]), each [batch, 1, pos, head_dim]. */
export function ropeTables(invFreq: Float64Array, positionIds: number[][]): { cos: tf.Tensor4D; sin: tf.Tensor4D } {
  const batch = positionIds.length;
  const pos = positionIds[0]?.length ?? 0;
  const half = invFreq.length;
  const dim = half * 2;
  const cos = new Float32Array(batch * pos * dim);
  const sin = new Float32Array(batch * pos * dim);
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < pos; t++) {
      const base = (b * pos + t) * dim;
      for (let i = 0; i < half; i++) {
        const angle = positionIds[b][t] * invFreq[i]; // float64, then rounded once
        cos[base + i] = cos[base + half + i] = Math.cos(angle);
        sin[base + i] = sin[base + half + i] = Math.sin(angle);
      }
    }
  }
  return { cos: tf.tensor4d(cos, [batch, 1, pos, dim]), sin: tf.tensor4d(sin, [batch, 1, pos, dim]) };
}

/** x * cos + rotate_half(x) * sin, for x [batch, heads, pos, head_dim]. */
export function applyRope(x: tf.Tensor4D, cos: tf.Tensor4D, sin: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const half = x.shape[3] / 2;
    const [x1, x2] = tf.split(x, [half, half], 3); // [batch, heads, pos, head_dim / 2] each
    const rotated = tf.concat([tf.neg(x2), x1], 3); // [batch, heads, pos, head_dim]
    return tf.add(tf.mul(x, cos), tf.mul(rotated, sin)) as tf.Tensor4D;
  });
}
