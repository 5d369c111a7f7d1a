// The one operation of abliteration, written once: removing the component along a unit direction r.
//   row kernel:    every row x of a matrix whose rows live in the residual stream,  x <- x - s (x . r) r
//                  (activations [.., d_model], the token embedding [vocab, d_model], biases [d_model], and
//                  o_proj / down_proj as the engine holds them, transposed to [in, d_model]);
//   column kernel: every column of W [d_model, in] as a Hugging Face checkpoint stores o_proj / down_proj,
//                  W <- W - s r (r^T W), in two passes (r^T W, then the columns) so it can stream.
// The inference-time hooks use the tensor form of the row kernel; the in-memory edit and the streamed
// export use the array forms. `s` (scale) is the fraction of the component removed.
import * as tf from "@tensorflow/tfjs-core";

/**
 * A direction normalised to unit length, in float64. Produced only by `unitVector`, so a function that
 * takes one never normalises again.
 */
export type UnitVector = Float64Array & { readonly __unit: unique symbol };

/**
 * Check a direction (length `dModel` when given, finite, not all zeros) and scale it to unit length.
 * `what` names it in errors.
 */
export function unitVector(direction: ArrayLike<number>, what = "direction", dModel?: number): UnitVector {
  if (dModel !== undefined && direction.length !== dModel)
    throw new Error(`${what} has ${direction.length} values, but the model's d_model (hidden_size) is ${dModel}`);
  let norm = 0;
  for (let i = 0; i < direction.length; i++) {
    const x = direction[i];
    if (!Number.isFinite(x)) throw new Error(`${what} contains ${x} at index ${i}`);
    norm += x * x;
  }
  if (norm === 0) throw new Error(`${what} is all zeros: the harmful and harmless means are identical, so there is no direction to remove`);
  norm = Math.sqrt(norm);
  return Float64Array.from({ length: direction.length }, (_, i) => direction[i] / norm) as UnitVector;
}

/** Check that a unit vector fits a model of width `dModel`. */
export function checkWidth(unit: UnitVector, dModel: number, what = "direction"): void {
  if (unit.length !== dModel) throw new Error(`${what} has ${unit.length} values, but the model's d_model (hidden_size) is ${dModel}`);
}

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Row kernel on tensors: x - s (x . r) r for x [..., d_model] and r [d_model]. */
export function projectRows(x: tf.Tensor, unit: tf.Tensor1D, scale = 1): tf.Tensor {
  return tf.tidy(() => {
    const d = unit.shape[0];
    const rows = tf.reshape(x, [-1, d]) as tf.Tensor2D; // [rows, d_model]
    const coefficient = tf.matMul(rows, tf.reshape(unit, [d, 1]) as tf.Tensor2D); // [rows, 1]
    return tf.reshape(tf.sub(rows, tf.mul(scale === 1 ? coefficient : tf.mul(coefficient, scale), unit)), x.shape);
  });
}

/**
 * Row kernel on rows of length d_model held in an array (float32 or float64; accumulated in float64, rounded once);
 * with `keepNorm`, each projected row is rescaled to the row's own length (the norm-preserving edit).
 */
export function projectRowsArray<T extends Float32Array | Float64Array>(
  values: T,
  unit: ArrayLike<number>,
  scale = 1,
  into?: T,
  keepNorm = false,
): T {
  const d = unit.length;
  if (values.length % d !== 0) throw new Error(`${values.length} values are not whole rows of d_model ${d}`);
  if (into && into.length !== values.length) throw new Error(`${values.length} values projected into an array of ${into.length}`);
  const out = into ?? new (values.constructor as new (n: number) => T)(values.length);
  for (let o = 0; o < values.length; o += d) {
    let c = 0;
    for (let i = 0; i < d; i++) c += values[o + i] * unit[i];
    c *= scale;
    let factor = 1; // exact: the plain edit's values are not changed by it
    if (keepNorm) {
      let before = 0;
      let after = 0;
      for (let i = 0; i < d; i++) {
        const e = values[o + i] - c * unit[i];
        before += values[o + i] * values[o + i];
        after += e * e;
      }
      factor = after > 0 ? Math.sqrt(before / after) : 0;
    }
    for (let i = 0; i < d; i++) out[o + i] = (values[o + i] - c * unit[i]) * factor;
  }
  return out;
}

/**
 * Column kernel, first pass: add r^T W for the rows [firstRow, firstRow + n) of W [d_model, cols] to
 * `coefficients` [cols] (float64).
 */
export function accumulateColumnCoefficients(
  coefficients: Float64Array,
  rows: Float32Array,
  firstRow: number,
  unit: ArrayLike<number>,
): void {
  const cols = coefficients.length;
  for (let i = 0; i * cols < rows.length; i++) {
    const ri = unit[firstRow + i];
    const o = i * cols;
    for (let j = 0; j < cols; j++) coefficients[j] += ri * rows[o + j];
  }
}

/**
 * Column kernel, second pass: W - s r (r^T W) for rows [firstRow, firstRow + n) of W, given r^T W (new values, or
 * into `into`); with `factors`, each column j of the result multiplied by factors[j] (the norm-preserving edit's
 * last pass), in float64 before the one rounding.
 */
export function projectColumnsF32(
  rows: Float32Array,
  firstRow: number,
  unit: ArrayLike<number>,
  coefficients: Float64Array,
  scale = 1,
  into?: Float32Array,
  factors?: Float64Array,
): Float32Array {
  const cols = coefficients.length;
  if (into && into.length !== rows.length) throw new Error(`${rows.length} values projected into an array of ${into.length}`);
  const out = into ?? new Float32Array(rows.length);
  for (let i = 0; i * cols < rows.length; i++) {
    const ri = scale * unit[firstRow + i];
    const o = i * cols;
    if (factors) for (let j = 0; j < cols; j++) out[o + j] = (rows[o + j] - ri * coefficients[j]) * factors[j];
    else for (let j = 0; j < cols; j++) out[o + j] = rows[o + j] - ri * coefficients[j];
  }
  return out;
}

// Norm-preserving ablation (grimjim's "MPOA"): each vector v that writes to the residual stream (a row of
// the embedding, a column of o_proj / down_proj as stored) is projected as above and then rescaled to its
// original length, v <- ||v|| unit(v - s (v . r) r). Lengths and the projection are accumulated in float64
// and every value is rounded once. A vector that the projection leaves all zeros (v along r, s = 1) stays zero.

/** Norm-preserving row kernel on rows of length d_model (float32 or float64): `projectRowsArray` keeping each row's length. */
export function projectRowsNormPreserving<T extends Float32Array | Float64Array>(
  values: T,
  unit: ArrayLike<number>,
  scale = 1,
  into?: T,
): T {
  return projectRowsArray(values, unit, scale, into, true);
}

/**
 * Norm-preserving column kernel, second pass (after `accumulateColumnCoefficients`): add, for the rows
 * [firstRow, firstRow + n) of W [d_model, cols], each column's squared length before (`before`) and after the
 * projection (`after`), both [cols], float64.
 */
export function accumulateColumnNorms(
  before: Float64Array,
  after: Float64Array,
  rows: Float32Array,
  firstRow: number,
  unit: ArrayLike<number>,
  coefficients: Float64Array,
  scale = 1,
): void {
  const cols = coefficients.length;
  for (let i = 0; i * cols < rows.length; i++) {
    const ri = scale * unit[firstRow + i];
    const o = i * cols;
    for (let j = 0; j < cols; j++) {
      const w = rows[o + j];
      const e = w - ri * coefficients[j];
      before[j] += w * w;
      after[j] += e * e;
    }
  }
}

/** Each column's rescaling from its squared lengths before and after the projection (0 for a column the projection zeroes). */
export function columnFactors(before: Float64Array, after: Float64Array): Float64Array {
  return Float64Array.from(before, (b, j) => (after[j] > 0 ? Math.sqrt(b / after[j]) : 0));
}

/** The norm-preserving column kernel on a whole W [d_model, cols] (row-major, as a checkpoint stores it). */
export function projectColumnsNormPreserving(values: Float32Array, cols: number, unit: ArrayLike<number>, scale = 1): Float32Array {
  const c = new Float64Array(cols);
  accumulateColumnCoefficients(c, values, 0, unit);
  const before = new Float64Array(cols);
  const after = new Float64Array(cols);
  accumulateColumnNorms(before, after, values, 0, unit, c, scale);
  return projectColumnsF32(values, 0, unit, c, scale, undefined, columnFactors(before, after));
}
