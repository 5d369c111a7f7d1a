// The export's WebAssembly edit kernels (src/kernels/edit.wat): the committed binary is the build of the text,
// and every kernel equals its JavaScript counterpart bit for bit, on special values and on every tail length.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, it } from "node:test";
import { EditKernels, layout } from "../src/kernels/edit.ts";
import { accumulateColumnCoefficients, projectColumnsF32, projectRowsArray } from "../src/projection.ts";
import { decodeToFloat32, encodeFromFloat32 } from "../src/safetensors/dtype.ts";
import { assembleKernels, KERNELS_WASM } from "../scripts/kernels/build.ts";

/** Deterministic pseudo-random numbers in [0, 1). */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Float32 bit patterns that exercise rounding to bf16: zeros, infinities, NaNs with payloads, denormals, ties either way, the largest finite values, and random patterns. */
function specialBits(count: number): Uint32Array {
  const fixed = [
    0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000, 0x7f800001, 0x7fbfffff, 0xff800001, 0x7fffffff, 0xffffffff, 0x7f810000,
    0x00000001, 0x00008000, 0x00018000, 0x0000ffff, 0x007fffff, 0x80008000, 0x3f808000, 0x3f818000, 0x3f807fff, 0x3f808001, 0x7f7fffff, 0xff7fffff,
    0x7f7f8000, 0x7f7f7fff, 0x3f800000, 0xbf800000,
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
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) assert.fail(`${what}: value ${Math.floor(i / a.BYTES_PER_ELEMENT)} differs: ${a[Math.floor(i / a.BYTES_PER_ELEMENT)]} vs ${b[Math.floor(i / a.BYTES_PER_ELEMENT)]}`);
};

describe("edit kernels (WebAssembly SIMD)", () => {
  it("the committed edit.wasm is the build of edit.wat (npm run build:kernels)", async () => {
    assert.deepEqual(new Uint8Array(await readFile(KERNELS_WASM)), await assembleKernels());
  });

  it("bf16 to float32: every one of the 65536 bf16 values, as decodeToFloat32", () => {
    const n = 65536;
    const kernels = EditKernels.acquire(n * 6 + 64);
    try {
      const { at } = layout(n * 2, n * 4);
      const words = new Uint16Array(n).map((_, i) => i);
      kernels.bytes.set(new Uint8Array(words.buffer), at[0]);
      kernels.k.bf16_to_f32(at[0], at[1], n);
      sameBits(kernels.f32(at[1], n), decodeToFloat32(new Uint8Array(words.buffer), "BF16"), "bf16_to_f32");
    } finally {
      kernels.release();
    }
  });

  it("float32 to bf16: nearest, ties to even, NaNs kept NaN, as encodeFromFloat32, for every tail length", () => {
    const bits = specialBits(4099);
    const values = new Float32Array(bits.buffer);
    const kernels = EditKernels.acquire(bits.length * 6 + 128);
    try {
      const { at } = layout(bits.length * 4, bits.length * 2 + 16);
      kernels.f32(at[0], values.length).set(values);
      for (const n of [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 4099]) {
        kernels.bytes.fill(0xee, at[1], at[1] + bits.length * 2 + 16);
        kernels.k.f32_to_bf16(at[0], at[1], n);
        assert.deepEqual(kernels.bytes.slice(at[1], at[1] + n * 2), encodeFromFloat32(values.subarray(0, n), "BF16"), `n = ${n}`);
        assert.equal(kernels.bytes[at[1] + n * 2], 0xee, `n = ${n}: wrote past the end`);
      }
    } finally {
      kernels.release();
    }
  });

  it("subtract_scaled_bf16 rounds its float32 results as f32_to_bf16 does, for every tail length", () => {
    // -0 - (-1) * v = v exactly (zeros keep their sign): the results are the special patterns themselves
    // (NaNs left out, whose payloads float64 arithmetic does not keep).
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
        assert.deepEqual(kernels.bytes.slice(at[2], at[2] + m * 2), encodeFromFloat32(Float32Array.from(values.subarray(0, m)), "BF16"), `m = ${m}`);
        assert.equal(kernels.bytes[at[2] + m * 2], 0xee, `m = ${m}: wrote past the end`);
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
      const wStored = encodeFromFloat32(decodeToFloat32(stored, "BF16").map((x) => (Number.isFinite(x) ? x : next() - 0.5)), "BF16");
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
          assert.deepEqual(kernels.bytes.slice(outsAt, outsAt + n * 2), encodeFromFloat32(projected.subarray(i * n, (i + 1) * n), "BF16"), `subtract_scaled_bf16 n = ${n} row ${i}`);
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
});
