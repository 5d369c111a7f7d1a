// The compiled decoding kernel (src/native/linear.c, #29): a few rows times a weight held as stored, float32,
// bf16 or f16, widened in registers. It must give float32 products of the exact widened values (the vector code
// and the portable loop alike), take every 16-bit word as decodeToFloat32 does, refuse bad shapes by name, and
// be taken by the native path for the products it is faster at (kernelTakes: decoding's few rows).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { stat } from "node:fs/promises";
import { createRequire } from "node:module";
import { promisify } from "node:util";
import { describe, it } from "node:test";
import { PACKAGE_ROOT } from "../src/paths.ts";
import { KERNEL_ROWS, kernelError, kernelTakes, LINEAR_LIBRARY, loadLinearKernel, type LinearKernel } from "../src/blas/linear-kernel.ts";
import { NativeMatrix, type HalfDtype } from "../src/blas/native-matrix.ts";
import type { Sgemm } from "../src/blas/sgemm.ts";
import { referenceSgemm } from "./helpers/reference-sgemm.ts";
import { decodeToFloat32, encodeFromFloat32 } from "../src/safetensors/dtype.ts";

const run = promisify(execFile);
const koffi = createRequire(import.meta.url)("koffi");

function kernel(): LinearKernel {
  const loaded = loadLinearKernel(koffi, "");
  assert.ok(loaded.kernel, `the kernel must be built for these tests (npm run build:native): ${loaded.skipped}`);
  return loaded.kernel;
}

let seed = 5;
const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5;

function matrices(dtype: "F32" | HalfDtype, rows: number, cols: number): { held: NativeMatrix; float: NativeMatrix } {
  const values = Float32Array.from({ length: rows * cols }, random);
  if (dtype === "F32") return { held: new NativeMatrix(values, [rows, cols]), float: new NativeMatrix(values.slice(), [rows, cols]) };
  const bytes = encodeFromFloat32(values, dtype);
  return {
    held: new NativeMatrix({ dtype, words: new Uint16Array(bytes.buffer, bytes.byteOffset, rows * cols) }, [rows, cols]),
    float: new NativeMatrix(decodeToFloat32(bytes, dtype), [rows, cols]),
  };
}

describe("the decoding kernel", () => {
  it("is within float32 rounding of float64 arithmetic, vector code and portable loop, for every dtype", () => {
    const k = kernel();
    assert.ok(kernelError(k) < 1e-5, `vector: ${kernelError(k)}`);
    assert.ok(kernelError(k, true) < 1e-5, `portable: ${kernelError(k, true)}`);
  });

  for (const dtype of ["F32", "BF16", "F16"] as const) {
    it(`${dtype}: products of 1 to ${KERNEL_ROWS + 1} rows, by the kernel where it takes them, equal the reference's`, () => {
      const k = kernel();
      // 261 values a row: past a multiple of 8 and of 16, so every tail is taken; 700 rows: several threads.
      const [rows, cols] = [700, 261];
      const { held, float } = matrices(dtype, rows, cols);
      for (const m of [1, 2, 3, 4, 5, 7, 8, 9, KERNEL_ROWS, KERNEL_ROWS + 1]) {
        const x = Float32Array.from({ length: m * cols }, random);
        const want = new Float32Array(m * rows);
        float.multiply(referenceSgemm, true, m, cols, x, want);
        const got = new Float32Array(m * rows).fill(NaN);
        let sgemmCalls = 0;
        const counting: Sgemm = (...args) => {
          sgemmCalls++;
          referenceSgemm(...args);
        };
        held.multiply(counting, true, m, cols, x, got, k);
        const taken = dtype === "F32" ? m >= 2 && m <= 8 : m <= KERNEL_ROWS;
        assert.equal(kernelTakes(m, dtype), taken);
        assert.equal(sgemmCalls > 0, !taken, `${m} rows: sgemm called ${sgemmCalls} times`);
        for (let e = 0; e < want.length; e++)
          assert.ok(Math.abs(got[e] - want[e]) <= 2e-6 * (1 + Math.abs(want[e])), `${m} rows, entry ${e}: ${got[e]} against ${want[e]}`);
        {
          const portable = new Float32Array(m * rows);
          k.multiply(m, rows, cols, x, held.halfValues?.words ?? held.values, dtype, portable, true);
          for (let e = 0; e < want.length; e++) assert.ok(Math.abs(portable[e] - want[e]) <= 2e-6 * (1 + Math.abs(want[e])));
        }
      }
    });
  }

  for (const dtype of ["BF16", "F16"] as const) {
    it(`${dtype}: every one of the 65536 words widens as decodeToFloat32 widens it (infinities, NaNs, subnormals)`, () => {
      const k = kernel();
      // Row w holds word w at column w % 8 and zeros elsewhere; times a row of ones, each output is that word's value.
      const [rows, cols] = [65536, 8];
      const words = new Uint16Array(rows * cols);
      for (let w = 0; w < rows; w++) words[w * cols + (w % cols)] = w;
      const expected = decodeToFloat32(new Uint8Array(Uint16Array.from({ length: rows }, (_, w) => w).buffer), dtype);
      const ones = new Float32Array(cols).fill(1);
      for (const portable of [false, true]) {
        const y = new Float32Array(rows);
        k.multiply(1, rows, cols, ones, words, dtype, y, portable);
        for (let w = 0; w < rows; w++) {
          const [got, want] = [y[w], expected[w] + 0]; // + 0: a sum of zeros and -0 is +0
          assert.ok(
            Object.is(got, want) || (Number.isNaN(got) && Number.isNaN(want)),
            `word 0x${w.toString(16)}: ${got}, expected ${want}`,
          );
        }
      }
    });
  }

  it("refuses a product whose arrays do not hold the shapes it is given, naming them", () => {
    const k = kernel();
    const x = new Float32Array(2 * 10);
    assert.throws(
      () => k.multiply(2, 3, 10, x, new Float32Array(29), "F32", new Float32Array(6)),
      /W \[3, 10\].*W holds 29 values, expected 30/,
    );
    assert.throws(
      () => k.multiply(2, 3, 10, x.subarray(1), new Float32Array(30), "F32", new Float32Array(6)),
      /x holds 19 values, expected 20/,
    );
    assert.throws(() => k.multiply(2, 3, 10, x, new Float32Array(30), "F32", new Float32Array(5)), /y holds 5 values, expected 6/);
    assert.throws(() => k.multiply(2, 3, 10, x, new Float32Array(30), "BF16", new Float32Array(6)), /BF16 must be a Uint16Array/);
  });

  it("a library that does not load is said with how to build it, and off turns the kernel off", () => {
    const missing = loadLinearKernel(koffi, "/no/such/libabliterate-linear.so");
    assert.equal(missing.kernel, undefined);
    assert.match(missing.skipped!, /\/no\/such\/libabliterate-linear\.so does not load .*npm run build:native/);
    assert.match(loadLinearKernel(koffi, "off").skipped!, /off \(ABLITERATE_LINEAR_KERNEL=off\)/);
  });

  it("the backend says the kernel runs; ABLITERATE_REQUIRE_BLAS=1 without it is an error, unless it is turned off", async () => {
    const init = `import("./src/backend.ts").then((m) => m.initBackend({ backend: "wasm" })).then((i) => console.log(i.device))`;
    const inProcess = async (env: Record<string, string>) => {
      try {
        const { stdout } = await run(process.execPath, ["--import", "tsx", "-e", init], {
          cwd: PACKAGE_ROOT,
          env: { ...process.env, ...env },
        });
        return { stdout, stderr: "", failed: false };
      } catch (error) {
        return { stdout: "", stderr: String((error as { stderr?: string }).stderr), failed: true };
      }
    };
    const taken = await inProcess({ ABLITERATE_LINEAR_KERNEL: "", ABLITERATE_REQUIRE_BLAS: "1" });
    assert.equal(taken.failed, false, taken.stderr);
    assert.match(taken.stdout, /decoding products by the compiled kernel \((AVX2 \+ FMA \+ F16C|portable C), \d+ threads?\)/);
    const required = await inProcess({ ABLITERATE_LINEAR_KERNEL: "/no/such/lib.so", ABLITERATE_REQUIRE_BLAS: "1" });
    assert.equal(required.failed, true);
    assert.match(required.stderr, /ABLITERATE_REQUIRE_BLAS=1, but the decoding kernel is not taken: .*\/no\/such\/lib\.so does not load/);
    const off = await inProcess({ ABLITERATE_LINEAR_KERNEL: "off", ABLITERATE_REQUIRE_BLAS: "1" });
    assert.equal(off.failed, false, off.stderr);
    assert.doesNotMatch(off.stdout, /compiled kernel/);
  });

  it("the build says why when there is no compiler, and leaves the built library as it was", async () => {
    const before = await stat(LINEAR_LIBRARY);
    const { stdout, stderr } = await run(process.execPath, ["--import", "tsx", "scripts/native/build.ts"], {
      cwd: PACKAGE_ROOT,
      env: { ...process.env, CC: "/no/such/cc" },
    });
    assert.equal(stdout, "");
    assert.match(stderr, /the decoding kernel .* was not built, so products of a few rows run through BLAS.*npm run build:native/s);
    assert.match(stderr, /\/no\/such\/cc -O3 -fopenmp/);
    const after = await stat(LINEAR_LIBRARY);
    assert.equal(after.mtimeMs, before.mtimeMs);
    assert.equal(after.ino, before.ino);
  });
});
