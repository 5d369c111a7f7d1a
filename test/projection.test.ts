// The projection kernels: hand-checked answers, agreement between the tensor and array forms, bad input.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend, projectRows, unitVector } from "../src/index.ts";
import { accumulateColumnCoefficients, checkWidth, projectColumnsF32, projectRowsArray } from "../src/projection.ts";

await initBackend();

describe("unitVector", () => {
  it("scales to unit length in float64", () => {
    assert.deepEqual([...unitVector([3, 4])], [0.6, 0.8]);
  });
  it("rejects zeros, non-finite values and a wrong width", () => {
    assert.throws(() => unitVector([0, 0]), /direction is all zeros: the harmful and harmless means are identical/);
    assert.throws(() => unitVector([1, Infinity], "r"), /r contains Infinity at index 1/);
    assert.throws(() => unitVector([1, 2, 3], "r", 4), /r has 3 values, but the model's d_model \(hidden_size\) is 4/);
    assert.throws(() => checkWidth(unitVector([1, 0]), 3), /direction has 2 values, but the model's d_model \(hidden_size\) is 3/);
  });
});

describe("row kernel", () => {
  it("removes the component along r from every row: (2, 3) minus its x-part is (0, 3)", async () => {
    const r = unitVector([1, 0]);
    assert.deepEqual([...projectRowsArray(Float32Array.from([2, 3, -1, 5]), r)], [0, 3, 0, 5]);
    const t = tf.tensor2d([
      [2, 3],
      [-1, 5],
    ]);
    const unit = tf.tensor1d(Float32Array.from(r));
    const out = projectRows(t, unit);
    assert.deepEqual(await out.array(), [
      [0, 3],
      [0, 5],
    ]);
    tf.dispose([t, unit, out]);
  });
  it("removes only a fraction `scale`", () => {
    assert.deepEqual([...projectRowsArray(Float64Array.from([2, 3]), unitVector([1, 0]), 0.25)], [1.5, 3]);
  });
  it("the tensor and array forms agree on a random batch of activations [2, 3, 8]", async () => {
    const values = Float32Array.from({ length: 48 }, (_, i) => Math.sin(i * 1.3));
    const r = unitVector(Float64Array.from({ length: 8 }, (_, i) => Math.cos(i)));
    const x = tf.tensor3d(values, [2, 3, 8]);
    const unit = tf.tensor1d(Float32Array.from(r));
    const out = projectRows(x, unit, 0.5);
    assert.deepEqual(out.shape, [2, 3, 8]);
    const expected = projectRowsArray(values, r, 0.5);
    (await out.data()).forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-6, `${i}: ${v} vs ${expected[i]}`));
    tf.dispose([x, unit, out]);
  });
  it("rejects values that are not whole rows", () => {
    assert.throws(() => projectRowsArray(new Float32Array(3), unitVector([1, 0])), /3 values are not whole rows of d_model 2/);
  });
});

describe("column kernel", () => {
  it("W - r (r^T W) for W [d_model, in], streamed over two row ranges, equals the transposed row kernel", () => {
    // W [2, 3] = [[1, 2, 3], [4, 5, 6]], r = (0, 1): the second row goes to zero.
    const r = unitVector([0, 1]);
    const w = Float32Array.from([1, 2, 3, 4, 5, 6]);
    const c = new Float64Array(3);
    accumulateColumnCoefficients(c, w.subarray(0, 3), 0, r);
    accumulateColumnCoefficients(c, w.subarray(3), 1, r);
    assert.deepEqual([...c], [4, 5, 6]);
    assert.deepEqual([...projectColumnsF32(w.subarray(0, 3), 0, r, c)], [1, 2, 3]);
    assert.deepEqual([...projectColumnsF32(w.subarray(3), 1, r, c)], [0, 0, 0]);
    // The same matrix held transposed, [in, d_model], goes through the row kernel.
    assert.deepEqual([...projectRowsArray(Float32Array.from([1, 4, 2, 5, 3, 6]), r)], [1, 0, 2, 0, 3, 0]);
  });
});
