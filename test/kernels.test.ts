// The export's WebAssembly edit kernels (src/kernels/edit.wat): the committed binary is the build of the text,
// and every kernel equals its JavaScript counterpart bit for bit, on special values and on every tail length.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, it } from "node:test";
import { EditKernels, layout } from "../src/kernels/edit.ts";
import {
  accumulateColumnCoefficients,
  accumulateColumnNorms,
  columnFactors,
  projectColumnsF32,
  projectRowsArray,
  projectRowsNormPreserving,
} from "../src/projection.ts";
import { decodeToFloat32, encodeFromFloat32 } from "../src/safetensors/dtype.ts";
import { assembleKernels, KERNELS_WASM } from "../tools/kernels/build.ts";

/** Deterministic pseudo-random numbers in [0, 1). */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/**
 * Float32 bit patterns that exercise rounding to bf16: zeros, infinities, NaNs with payloads, denormals, ties either way, the largest
 * finite values, and random patterns.
 */
function specialBits(count: number): Uint32Array {
  const fixed = [
    0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000, 0x7f800001, 0x7fbfffff, 0xff800001, 0x7fffffff, 0xffffffff,
    0x7f810000, 0x00000001, 0x00008000, 0x00018000, 0x0000ffff, 0x007fffff, 0x80008000, 0x3f808000, 0x3f818000, 0x3f807fff, 0x3f808001,
    0x7f7fffff, 0xff7fffff, 0x7f7f8000, 0x7f7f7fff, 0x3f800000, 0xbf800000,
  ];
  // Each special pattern at every position modulo 8 (the kernels' lanes and unrolling): the list eight times,
  // each time after one more random pattern; the rest random.
  const next = random(11);
  const bits = new Uint32Array(count);
  let i = 0;
  for (let copy = 0; copy < 8; copy++) {
    if (i < count) bits[i++] = Math.floor(next() * 2 ** 32);
    for (const b of fixed) if (i < count) bits[i++] = b;
  }
  while (i < count) bits[i++] = Math.floor(next() * 2 ** 32);
  return bits;
}

const sameBits = (a: Float32Array | Float64Array, b: Float32Array | Float64Array, what: string) => {
  assert.equal(a.length, b.length, what);
  const ua = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const ub = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  for (let i = 0; i < ua.length; i++)
    if (ua[i] !== ub[i])
      assert.fail(
        `${what}: value ${Math.floor(i / a.BYTES_PER_ELEMENT)} differs: ${a[Math.floor(i / a.BYTES_PER_ELEMENT)]} vs ` +
          `${b[Math.floor(i / a.BYTES_PER_ELEMENT)]}`,
      );
};

describe("edit kernels (WebAssembly SIMD)", () => {
  it("the committed edit.wasm is the build of edit.wat (npm run build:kernels)", async () => {
    assert.deepEqual(new Uint8Array(await readFile(KERNELS_WASM)), await assembleKernels());
  });

  it("bf16 rows widen exactly: every one of the 65536 bf16 values, through accumulate_bf16, as projection.ts's kernel", () => {
    const n = 65536;
    const kernels = EditKernels.acquire(n * 10 + 64);
    try {
      const { at } = layout(n * 2, n * 8);
      const words = new Uint16Array(n).map((_, i) => i);
      kernels.bytes.set(new Uint8Array(words.buffer), at[0]);
      kernels.f64(at[1], n).fill(0);
      kernels.k.accumulate_bf16(at[1], at[0], 1, n);
      const expected = new Float64Array(n);
      accumulateColumnCoefficients(expected, decodeToFloat32(new Uint8Array(words.buffer), "BF16"), 0, [1]);
      const got = kernels.f64(at[1], n);
      // Arithmetic on a NaN gives some NaN (its payload is not specified, in JavaScript or WebAssembly).
      for (let i = 0; i < n; i++) if (Number.isNaN(expected[i])) assert.ok(Number.isNaN(got[i]), `bf16 ${i.toString(16)}: ${got[i]}`);
      sameBits(
        got.map((x, i) => (Number.isNaN(expected[i]) ? 0 : x)),
        expected.map((x) => (Number.isNaN(x) ? 0 : x)),
        "accumulate_bf16 over every bf16 value",
      );
    } finally {
      kernels.release();
    }
  });

  it(
    "subtract_scaled_bf16 rounds its float32 results to bf16 as encodeFromFloat32 does (nearest, ties to even), for every tail " + "length",
    () => {
      // -0 - (-1) * v = v exactly (zeros keep their sign): the results are the special patterns themselves
      // (NaNs apart: see below).
      const values = Float64Array.from(new Float32Array(specialBits(4099).buffer).filter((x) => !Number.isNaN(x)));
      const n = values.length;
      const { at, total } = layout(n * 2, n * 8, n * 2 + 16);
      const kernels = EditKernels.acquire(total);
      try {
        new Uint16Array(kernels.k.memory.buffer, at[0], n).fill(0x8000); // bf16 -0
        kernels.f64(at[1], n).set(values);
        for (const m of [1, 2, 3, 4, 5, 6, 7, 8, 9, 13, n]) {
          kernels.bytes.fill(0xee, at[2], at[2] + n * 2 + 16);
          kernels.k.subtract_scaled_bf16(at[2], at[0], -1, at[1], m);
          assert.deepEqual(
            kernels.bytes.slice(at[2], at[2] + m * 2),
            encodeFromFloat32(Float32Array.from(values.subarray(0, m)), "BF16"),
            `m = ${m}`,
          );
          assert.equal(kernels.bytes[at[2] + m * 2], 0xee, `m = ${m}: wrote past the end`);
        }
        // A NaN result stays a NaN in bf16 (exponent all ones, mantissa not zero), in the SIMD body and the tail.
        const nans = Float64Array.from({ length: 7 }, (_, i) => (i % 2 ? NaN : -NaN));
        kernels.f64(at[1], 7).set(nans);
        kernels.k.subtract_scaled_bf16(at[2], at[0], -1, at[1], 7);
        for (const word of new Uint16Array(kernels.k.memory.buffer, at[2], 7))
          assert.ok((word & 0x7f80) === 0x7f80 && (word & 0x7f) !== 0, `NaN became ${word.toString(16)}`);
      } finally {
        kernels.release();
      }
    },
  );

  it("widen_bf16 and narrow_bf16 equal decodeToFloat32 and encodeFromFloat32 bit for bit, at every tail length and offset", () => {
    // Every bf16 value widened; float32 patterns that exercise rounding (ties, NaNs, infinities) narrowed.
    const words = new Uint16Array(65536).map((_, i) => i);
    const bits = specialBits(4099);
    const n = words.length;
    const { at, total } = layout(n * 2 + 8, n * 4 + 16, bits.length * 4 + 8, bits.length * 2 + 16);
    const [wordsAt, wideAt, bitsAt, narrowAt] = at;
    const kernels = EditKernels.acquire(total);
    try {
      const { k } = kernels;
      for (const offset of [0, 2]) {
        // Rows need not be aligned: the stored row at an odd word, the output after it.
        kernels.bytes.set(new Uint8Array(words.buffer), wordsAt + offset);
        for (const m of [0, 1, 2, 3, 4, 5, 7, 9, n]) {
          kernels.bytes.fill(0xee, wideAt, wideAt + n * 4 + 16);
          k.widen_bf16(wideAt + offset * 2, wordsAt + offset, m);
          const want = decodeToFloat32(new Uint8Array(words.buffer, 0, m * 2), "BF16");
          assert.deepEqual(
            kernels.bytes.slice(wideAt + offset * 2, wideAt + offset * 2 + m * 4),
            new Uint8Array(want.buffer),
            `widen m = ${m}`,
          );
          assert.equal(kernels.bytes[wideAt + offset * 2 + m * 4], 0xee, `widen m = ${m}: wrote past the end`);
        }
        kernels.bytes.set(new Uint8Array(bits.buffer), bitsAt + offset * 2);
        for (const m of [0, 1, 2, 3, 4, 5, 7, 9, bits.length]) {
          kernels.bytes.fill(0xee, narrowAt, narrowAt + bits.length * 2 + 16);
          k.narrow_bf16(narrowAt + offset, bitsAt + offset * 2, m);
          const want = encodeFromFloat32(new Float32Array(bits.buffer, 0, m), "BF16");
          assert.deepEqual(kernels.bytes.slice(narrowAt + offset, narrowAt + offset + m * 2), want, `narrow m = ${m}`);
          assert.equal(kernels.bytes[narrowAt + offset + m * 2], 0xee, `narrow m = ${m}: wrote past the end`);
        }
      }
    } finally {
      kernels.release();
    }
  });

  it("the column and row kernels, float32 and bf16 rows, equal projection.ts's for every tail length", () => {
    const next = random(5);
    for (const n of [1, 2, 3, 4, 5, 7, 8, 13, 64, 67]) {
      const rows = 5;
      // Rows of float32 values that are exactly bf16 (so both forms hold the same numbers), with specials.
      const bits = specialBits(rows * n);
      const stored = encodeFromFloat32(new Float32Array(bits.slice().buffer), "BF16");
      // (NaN and infinity would make every later sum NaN: replaced by random values, themselves made bf16.)
      const wStored = encodeFromFloat32(
        decodeToFloat32(stored, "BF16").map((x) => (Number.isFinite(x) ? x : next() - 0.5)),
        "BF16",
      );
      const w = decodeToFloat32(wStored, "BF16");
      const r = Float64Array.from({ length: rows }, () => next() - 0.5);
      const u = Float64Array.from({ length: n }, () => next() - 0.5);
      const { at, total } = layout(rows * n * 4, rows * n * 2, n * 8, n * 8, n * 4, n * 2);
      const [wAt, wsAt, coefAt, uAt, outAt, outsAt] = at;
      const kernels = EditKernels.acquire(total);
      try {
        const { k } = kernels;
        kernels.f32(wAt, rows * n).set(w);
        kernels.bytes.set(wStored, wsAt);
        kernels.f64(uAt, n).set(u);
        // Column kernel: r^T W, then W - s r (r^T W), row by row.
        const coefficients = new Float64Array(n);
        accumulateColumnCoefficients(coefficients, w, 0, r);
        for (const bf16 of [false, true]) {
          kernels.f64(coefAt, n).fill(0);
          for (let i = 0; i < rows; i++) {
            if (bf16) k.accumulate_bf16(coefAt, wsAt + i * n * 2, r[i], n);
            else k.accumulate(coefAt, wAt + i * n * 4, r[i], n);
          }
          sameBits(kernels.f64(coefAt, n), coefficients, `accumulate${bf16 ? "_bf16" : ""} n = ${n}`);
        }
        const projected = projectColumnsF32(w, 0, r, coefficients, 0.75);
        for (let i = 0; i < rows; i++) {
          k.subtract_scaled(outAt, wAt + i * n * 4, 0.75 * r[i], coefAt, n);
          sameBits(kernels.f32(outAt, n), projected.subarray(i * n, (i + 1) * n), `subtract_scaled n = ${n} row ${i}`);
          k.subtract_scaled_bf16(outsAt, wsAt + i * n * 2, 0.75 * r[i], coefAt, n);
          assert.deepEqual(
            kernels.bytes.slice(outsAt, outsAt + n * 2),
            encodeFromFloat32(projected.subarray(i * n, (i + 1) * n), "BF16"),
            `subtract_scaled_bf16 n = ${n} row ${i}`,
          );
        }
        // Row kernel: x - s (x . u) u, each row of length n against u.
        const rowsProjected = projectRowsArray(w, u, 0.75);
        for (let i = 0; i < rows; i++) {
          const c = k.dot(wAt + i * n * 4, uAt, n);
          assert.equal(k.dot_bf16(wsAt + i * n * 2, uAt, n), c, `dot_bf16 n = ${n}`);
          k.subtract_scaled(outAt, wAt + i * n * 4, c * 0.75, uAt, n);
          sameBits(kernels.f32(outAt, n), rowsProjected.subarray(i * n, (i + 1) * n), `dot + subtract_scaled n = ${n} row ${i}`);
        }
      } finally {
        kernels.release();
      }
    }
  });

  it("the norm-preserving kernels (column norms, rescaled write, row norms) equal projection.ts's for every tail length", () => {
    const next = random(9);
    for (const n of [1, 2, 3, 4, 5, 7, 8, 13, 64, 67]) {
      const rows = 5;
      const w = Float32Array.from({ length: rows * n }, () => next() - 0.5);
      const r = Float64Array.from({ length: rows }, () => next() - 0.5);
      const u = Float64Array.from({ length: n }, () => next() - 0.5);
      const { at, total } = layout(rows * n * 4, n * 8, n * 8, n * 8, n * 8, n * 8, n * 4, 16);
      const [wAt, coefAt, beforeAt, afterAt, factorsAt, uAt, outAt, sumsAt] = at;
      const kernels = EditKernels.acquire(total);
      try {
        const { k } = kernels;
        kernels.f32(wAt, rows * n).set(w);
        kernels.f64(uAt, n).set(u);
        // Columns: r^T W, the squared lengths before and after, then the rescaled rows.
        const coefficients = new Float64Array(n);
        accumulateColumnCoefficients(coefficients, w, 0, r);
        const [before, after] = [new Float64Array(n), new Float64Array(n)];
        accumulateColumnNorms(before, after, w, 0, r, coefficients, 0.75);
        kernels.f64(coefAt, n).set(coefficients);
        kernels.f64(beforeAt, n).fill(0);
        kernels.f64(afterAt, n).fill(0);
        for (let i = 0; i < rows; i++) k.accumulate_norms(beforeAt, afterAt, wAt + i * n * 4, 0.75 * r[i], coefAt, n);
        sameBits(kernels.f64(beforeAt, n), before, `accumulate_norms before n = ${n}`);
        sameBits(kernels.f64(afterAt, n), after, `accumulate_norms after n = ${n}`);
        const factors = columnFactors(before, after);
        kernels.f64(factorsAt, n).set(factors);
        const kept = projectColumnsF32(w, 0, r, coefficients, 0.75, undefined, factors);
        for (let i = 0; i < rows; i++) {
          k.subtract_scaled_times(outAt, wAt + i * n * 4, 0.75 * r[i], coefAt, factorsAt, n);
          sameBits(kernels.f32(outAt, n), kept.subarray(i * n, (i + 1) * n), `subtract_scaled_times n = ${n} row ${i}`);
        }
        // Rows: the dot product, the row's lengths before and after, the rescaled row.
        const rowsKept = projectRowsNormPreserving(w, u, 0.75);
        for (let i = 0; i < rows; i++) {
          const c = k.dot(wAt + i * n * 4, uAt, n) * 0.75;
          k.row_norms(sumsAt, wAt + i * n * 4, c, uAt, n);
          const [b, a] = kernels.f64(sumsAt, 2);
          kernels.f64(factorsAt, n).fill(a > 0 ? Math.sqrt(b / a) : 0);
          k.subtract_scaled_times(outAt, wAt + i * n * 4, c, uAt, factorsAt, n);
          sameBits(kernels.f32(outAt, n), rowsKept.subarray(i * n, (i + 1) * n), `row_norms + subtract_scaled_times n = ${n} row ${i}`);
        }
      } finally {
        kernels.release();
      }
    }
  });
});
