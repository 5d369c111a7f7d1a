// The forward pass's fused kernels (src/models/fused.ts), the compiled attention, and the native product's bias and leading axes
// (src/blas/native-matrix.ts): the same values as the composite ops they replace, the composite ops while a
// gradient is recorded, and named errors on shapes they cannot take.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as tf from "@tensorflow/tfjs-core";
import { backendInfo, initBackend, loadModel } from "../src/index.ts";
import { CACHE_ROOM } from "../src/models/decoder.ts";
import { modelDir, reference } from "./helpers/reference.ts";
import { fusedAttention, fusedAttentionKernel, fusedKernels, fusedRmsNorm, fusedRope } from "../src/models/fused.ts";
import { createRequire } from "node:module";
import { attentionError, attentionReference, loadLinearKernel } from "../src/blas/linear-kernel.ts";
import { applyRope } from "../src/models/rope.ts";
import { NativeMatrix, nativeLinear } from "../src/blas/native-matrix.ts";

/** Deterministic values in [-2, 2). */
function values(count: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: count }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32) * 4 - 2;
  });
}

await initBackend({ backend: "wasm" });

describe("fused kernels", () => {
  it("serve passes that record no gradient, and step aside while one is recorded", () => {
    assert.equal(fusedKernels(), true);
    let inside: boolean | undefined;
    tf.grad((x: tf.Tensor) => {
      inside = fusedKernels();
      return tf.sum(x);
    })(tf.ones([2]));
    assert.equal(inside, false);
  });

  for (const offset of [0, 1] as const) {
    it(`RMSNorm (offset ${offset}) is x / rms(x) * (offset + w) to float32 rounding, row by row over every leading axis`, () => {
      const [rows, width, eps] = [6, 40, 1e-6];
      const x = values(rows * width, 1);
      const w = values(width, 2);
      const out = fusedRmsNorm(tf.tensor3d(x, [2, 3, width]), tf.tensor1d(w), eps, offset);
      assert.deepEqual(out.shape, [2, 3, width]);
      const got = out.dataSync();
      for (let r = 0; r < rows; r++) {
        let sum = 0;
        for (let j = 0; j < width; j++) sum += x[r * width + j] ** 2;
        const inverse = 1 / Math.sqrt(sum / width + eps);
        for (let j = 0; j < width; j++) {
          const exact = x[r * width + j] * inverse * (offset + w[j]);
          // Four roundings to float32, each within half an ulp (2^-24 relative).
          assert.ok(Math.abs(got[r * width + j] - exact) <= 4 * 2 ** -24 * Math.abs(exact) + 1e-30, `row ${r}, column ${j}`);
        }
      }
      // And the composite ops agree with it to the same rounding.
      const composite = tf.tidy(() => {
        const t = tf.tensor3d(x, [2, 3, width]);
        const normed = tf.mul(t, tf.rsqrt(tf.add(tf.mean(tf.square(t), -1, true), eps)));
        return tf.mul(normed, tf.add(tf.tensor1d(w), offset)).dataSync();
      });
      composite.forEach((v, i) => assert.ok(Math.abs(v - got[i]) <= 8 * 2 ** -24 * Math.abs(v) + 1e-30, `value ${i}`));
    });
  }

  for (const [headDim, dim] of [
    [8, 8],
    [8, 4],
  ]) {
    it(`RoPE over ${dim} of ${headDim} dimensions equals the composite ops bit for bit`, () => {
      const [batch, heads, pos] = [2, 3, 5];
      const x = tf.tensor4d(values(batch * heads * pos * headDim, 3), [batch, heads, pos, headDim]);
      const cos = tf.tensor4d(values(batch * pos * dim, 4), [batch, 1, pos, dim]);
      const sin = tf.tensor4d(values(batch * pos * dim, 5), [batch, 1, pos, dim]);
      assert.deepEqual(fusedRope(x, cos, sin).dataSync(), applyRope(x, cos, sin).dataSync());
    });
  }

  it("name the shapes they cannot take", () => {
    assert.throws(
      () => fusedRmsNorm(tf.zeros([2, 4]), tf.zeros([3]) as tf.Tensor1D, 1e-6, 0),
      /RMSNorm: x \[2,4\].*weight \[3\].*expected float32 \[4\]/,
    );
    assert.throws(
      () => fusedRope(tf.zeros([1, 2, 3, 8]) as tf.Tensor4D, tf.zeros([1, 1, 2, 8]) as tf.Tensor4D, tf.zeros([1, 1, 2, 8]) as tf.Tensor4D),
      /RoPE: x \[1,2,3,8\], cos \[1,1,2,8\].*expected cos and sin \[1, 1, 3, <= 8\]/,
    );
  });
});

describe("the native product", async () => {
  const blas = (await backendInfo()).blas;
  it("runs here: the native BLAS path is installed", () => assert.ok(blas, "install libopenblas0-pthread (Debian/Ubuntu)"));
  if (!blas) return;
  const [out, inF] = [12, 10];
  const weight = values(out * inF, 6);
  const bias = tf.tensor1d(values(out, 7));
  const matrix = new NativeMatrix(weight.slice(), [out, inF]);

  for (const rows of [1, 3]) {
    it(`takes every leading axis of x as rows and adds a bias in the same kernel (${rows} rows a batch)`, () => {
      const x = tf.tensor3d(values(2 * rows * inF, 8 + rows), [2, rows, inF]);
      const fused = nativeLinear(x, matrix, bias);
      assert.deepEqual(fused.shape, [2, rows, out]);
      const separate = tf.reshape(tf.add(nativeLinear(tf.reshape(x, [2 * rows, inF]) as tf.Tensor2D, matrix), bias), [2, rows, out]);
      assert.deepEqual(fused.dataSync(), separate.dataSync());
    });
  }

  it("records a gradient in x and in the bias while one is recorded", () => {
    const x = tf.tensor3d(values(2 * 3 * inF, 9), [2, 3, inF]);
    const [dx, dBias] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(nativeLinear(a, matrix, b as tf.Tensor1D)))([x, bias]);
    // d sum(x W^T + b) / dx = ones W: every row of dx is the column sums of W; / db = the number of rows.
    const columnSums = Array.from({ length: inF }, (_, j) => weight.filter((_, i) => i % inF === j).reduce((a, b) => a + b, 0));
    const got = dx.dataSync();
    for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i] - columnSums[i % inF]) < 1e-5, `dx ${i}`);
    assert.deepEqual(Array.from(dBias.dataSync()), new Array(out).fill(6));
  });

  it("names a bias of the wrong shape", () => {
    assert.throws(
      () => nativeLinear(tf.zeros([1, inF]), matrix, tf.zeros([out + 1]) as tf.Tensor1D),
      /a bias of shape \[13\].*expected float32 \[12\]/,
    );
  });
});

/** Attention as decoder.ts's composite ops compute it (grouped heads, scale, cap, mask, softmax), heads merged. */
function compositeAttention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask: tf.Tensor4D, scale: number, cap: number): tf.Tensor3D {
  return tf.tidy(() => {
    const [batch, heads, pos, d] = q.shape;
    const [, kvHeads, keys] = k.shape;
    const group = heads / kvHeads;
    const kT = tf.reshape<tf.Rank.R3>(tf.transpose(k, [0, 1, 3, 2]), [batch * kvHeads, d, keys]);
    const qGrouped = tf.reshape<tf.Rank.R3>(q, [batch * kvHeads, group * pos, d]);
    let scores = tf.mul(tf.reshape(tf.matMul(qGrouped, kT), [batch, heads, pos, keys]), scale);
    if (cap) scores = tf.mul(tf.tanh(tf.div(scores, cap)), cap);
    const pattern = tf.reshape<tf.Rank.R3>(tf.softmax(tf.add(scores, mask), -1), [batch * kvHeads, group * pos, keys]);
    const z = tf.matMul(pattern, tf.reshape<tf.Rank.R3>(v, [batch * kvHeads, keys, d])); // [batch * kv_heads, group * pos, d]
    return tf.reshape(tf.transpose(tf.reshape(z, [batch, heads, pos, d]), [0, 2, 1, 3]), [batch, pos, heads * d]);
  });
}

describe("the compiled attention", async () => {
  const blas = (await backendInfo()).blas;
  const attention = loadLinearKernel(createRequire(import.meta.url)("koffi")).kernel?.attention;
  it("runs here: the native path loaded it and it passed its test", () => {
    assert.ok(blas?.kernel && attention, "install libopenblas0-pthread and a C compiler, then npm run build:native");
    assert.equal(fusedAttentionKernel(), true);
  });
  if (!blas?.kernel || !attention) return;

  for (const [batch, heads, kvHeads, pos, keys, d, cap] of [
    [1, 4, 4, 1, 9, 16, 0], // one sequence, one kv head a query head
    [3, 6, 2, 1, 40, 12, 0], // grouped heads, a head dimension past a multiple of 8
    [2, 4, 1, 3, 7, 8, 2.5], // several positions, a softcap
  ]) {
    it(`equals the composite ops to float32 rounding: batch ${batch}, ${heads} heads on ${kvHeads}, ${pos} x ${keys}, cap ${cap}`, () => {
      const q = tf.tensor4d(values(batch * heads * pos * d, 11), [batch, heads, pos, d]);
      const k = tf.tensor4d(values(batch * kvHeads * keys * d, 12), [batch, kvHeads, keys, d]);
      const v = tf.tensor4d(values(batch * kvHeads * keys * d, 13), [batch, kvHeads, keys, d]);
      // Causal over the last positions, and the first key of the second sequence masked as padding.
      const bias = new Float32Array(batch * pos * keys).map((_, i) => {
        const [b, t, j] = [Math.floor(i / (pos * keys)), Math.floor(i / keys) % pos, i % keys];
        return j > keys - pos + t || (b === 1 && j === 0) ? -1e9 : 0;
      });
      const mask = tf.tensor4d(bias, [batch, 1, pos, keys]);
      const scale = 1 / Math.sqrt(d);
      const fused = fusedAttention(q, k, v, mask, scale, cap);
      assert.deepEqual(fused.shape, [batch, pos, heads * d]);
      const got = fused.dataSync();
      const exact = attentionReference(
        batch,
        heads,
        kvHeads,
        pos,
        keys,
        keys,
        d,
        q.dataSync() as Float32Array,
        k.dataSync() as Float32Array,
        v.dataSync() as Float32Array,
        bias,
        scale,
        cap,
      );
      const composite = compositeAttention(q, k, v, mask, scale, cap).dataSync();
      // Values in [-2, 2): weighted means of v. Both within float32 sums' error of the exact value.
      for (let i = 0; i < got.length; i++) {
        assert.ok(Math.abs(got[i] - exact[i]) < 1e-5, `value ${i}: ${got[i]} against exact ${exact[i]}`);
        assert.ok(Math.abs(composite[i] - exact[i]) < 1e-5, `composite value ${i}`);
      }
    });
  }

  it("writes the step's keys and values into a cache in place and attends over its filled positions only", () => {
    const [batch, heads, kvHeads, d, past, room] = [2, 4, 2, 8, 5, 9];
    const filled = (seed: number) => {
      const cache = new Float32Array(batch * kvHeads * room * d).fill(NaN); // room past the filled positions: never read
      const rows = values(batch * kvHeads * past * d, seed);
      for (let h = 0; h < batch * kvHeads; h++) cache.set(rows.subarray(h * past * d, (h + 1) * past * d), h * room * d);
      return { cache: tf.tensor4d(cache, [batch, kvHeads, room, d]), rows: tf.tensor4d(rows, [batch, kvHeads, past, d]) };
    };
    const [k, v] = [filled(21), filled(22)];
    const kNew = tf.tensor4d(values(batch * kvHeads * d, 23), [batch, kvHeads, 1, d]);
    const vNew = tf.tensor4d(values(batch * kvHeads * d, 24), [batch, kvHeads, 1, d]);
    const q = tf.tensor4d(values(batch * heads * d, 25), [batch, heads, 1, d]);
    const mask = tf.zeros([batch, 1, 1, past + 1]) as tf.Tensor4D;
    const got = fusedAttention(q, k.cache, v.cache, mask, 0.3, 0, { keys: kNew, values: vNew }).dataSync();
    const [kAll, vAll] = [tf.concat([k.rows, kNew], 2), tf.concat([v.rows, vNew], 2)];
    const composite = compositeAttention(q, kAll, vAll, mask, 0.3, 0).dataSync();
    got.forEach((value, i) => assert.ok(Math.abs(value - composite[i]) < 1e-5, `value ${i}: ${value} against ${composite[i]}`));
    // The cache now holds the new position after the old ones; its room past them is untouched.
    const written = tf.slice(k.cache, [0, 0, 0, 0], [-1, -1, past + 1, -1]).dataSync();
    assert.deepEqual(written, kAll.dataSync());
    assert.ok(
      tf
        .slice(v.cache, [0, 0, past + 1, 0], [-1, -1, -1, -1])
        .dataSync()
        .every(Number.isNaN),
    );
  });

  for (const arch of ["qwen2", "gemma2"] as const) {
    it(`${arch}: greedy tokens past the cache's first room of ${CACHE_ROOM} positions are those of a full recomputation`, async () => {
      const model = await loadModel(modelDir(arch));
      try {
        const prompts = reference(arch).seqs;
        const steps = CACHE_ROOM + 16;
        const { tokens } = await model.generate(prompts, { maxNewTokens: steps, stopTokens: [] });
        const longest = Math.max(...prompts.map((p) => p.length));
        const logits = model.forward(prompts.map((p, b) => [...p, ...tokens[b].slice(0, steps - 1)])); // left-padded
        const all = (await logits.array()) as number[][][];
        logits.dispose();
        let compared = 0;
        for (let b = 0; b < prompts.length; b++)
          for (let i = 0; i < steps; i++) {
            const row = all[b][longest - 1 + i];
            const sorted = [...row].sort((x, y) => y - x);
            if (sorted[0] - sorted[1] < 1e-3) continue; // a near-tie may go either way
            assert.equal(tokens[b][i], row.indexOf(sorted[0]), `sequence ${b}, step ${i}`);
            compared++;
          }
        assert.ok(compared > steps, `only ${compared} steps compared`);
      } finally {
        model.dispose();
      }
    });
  }

  it("a KV cache that does not hold the positions the mask covers is named, not attended over", async () => {
    const model = await loadModel(modelDir("qwen2"));
    try {
      const kvCache = { keys: [], values: [], lengths: [] };
      const runHook = (_name: string, _layer: number | undefined, x: tf.Tensor) => x;
      assert.throws(
        () => model.decoder.forward({ inputIds: [[1]], attentionMask: [[1, 1]] }, { runHook, kvCache, logits: "last", tidyLayers: true }),
        /layer 0: the KV cache holds 0 positions and the step 1, but the attention mask covers 2/,
      );
    } finally {
      model.dispose();
    }
  });

  it("is refused at load when it computes wrong values", () => {
    assert.ok(attentionError(() => {}) > 0.1);
    assert.ok(attentionError(attention) < 1e-6);
  });

  it("names the shapes it cannot take", () => {
    const q = tf.zeros([1, 4, 1, 8]) as tf.Tensor4D;
    const kv = tf.zeros([1, 3, 5, 8]) as tf.Tensor4D;
    assert.throws(
      () => fusedAttention(q, kv, kv, tf.zeros([1, 1, 1, 5]) as tf.Tensor4D, 1),
      /attention: q \[1,4,1,8\], k \[1,3,5,8\].*kv_heads dividing heads/,
    );
    const k = tf.zeros([1, 2, 5, 8]) as tf.Tensor4D;
    assert.throws(() => fusedAttention(q, k, k, tf.zeros([1, 1, 1, 6]) as tf.Tensor4D, 1), /mask \[1,1,1,6\].*pos <= keys <= room/);
    assert.throws(
      () => fusedAttention(q, k, k, tf.zeros([1, 1, 1, 5]) as tf.Tensor4D, 1, 0, { keys: q, values: q }),
      /new keys \[1,4,1,8\].*new keys and values \[batch, kv_heads, pos, head_dim\]/,
    );
    assert.throws(
      () => fusedAttention(q, k, k, tf.zeros([2, 1, 1, 4]) as tf.Tensor4D, 1),
      /mask \[2,1,1,4\].*mask \[batch, 1, pos, keys\]/,
    );
  });
});
