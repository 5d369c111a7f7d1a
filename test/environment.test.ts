// The environment settings users set by hand do what they say (#23, the low items).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, it } from "node:test";
import { PACKAGE_ROOT } from "../src/paths.ts";
import { forSmallProducts, sgemmError, type Sgemv } from "../src/blas/library.ts";
import { NO_TRANS, ROW_MAJOR, TRANS, type Sgemm } from "../src/blas/sgemm.ts";
import { paddingScratchFloats } from "../src/blas/padding.ts";
import { architectureFor, parseConfig } from "../src/config.ts";
import { estimateMemory } from "../src/memory.ts";
import { QWEN25_05B_SHAPES } from "../tools/shapes.ts";

const run = promisify(execFile);
const tsx = ["--import", "tsx", "-e"];

/** Run `code` in a fresh process with `env` added; its stdout and stderr, whether it failed or not. */
async function inProcess(code: string, env: Record<string, string>): Promise<{ stdout: string; stderr: string; failed: boolean }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [...tsx, code], { cwd: PACKAGE_ROOT, env: { ...process.env, ...env } });
    return { stdout, stderr, failed: false };
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string };
    return { stdout: String(e.stdout), stderr: String(e.stderr), failed: true };
  }
}

describe("environment settings", () => {
  it("ABLITERATE_COPY_RANGE turns the kernel copy off with off, 0, false or no", async () => {
    for (const value of ["off", "0", "false", "no", "OFF"]) {
      const { stdout } = await inProcess(`import("./src/copy-range.ts").then((m) => console.log(m.kernelCopy()))`, {
        ABLITERATE_COPY_RANGE: value,
      });
      assert.equal(stdout.trim(), `off (ABLITERATE_COPY_RANGE=${value})`);
    }
  });

  it("a library named in ABLITERATE_BLAS that cannot be used is said on stderr; ABLITERATE_REQUIRE_BLAS=1 makes it an error", async () => {
    const init = `import("./src/backend.ts").then((m) => m.initBackend({ backend: "wasm" })).then((i) => console.log(i.device))`;
    const warned = await inProcess(init, { ABLITERATE_BLAS: "/no/such/libblas.so", ABLITERATE_REQUIRE_BLAS: "" });
    assert.equal(warned.failed, false, warned.stderr);
    assert.match(warned.stderr, /ABLITERATE_BLAS=\/no\/such\/libblas\.so is not used: native BLAS: none usable/);
    const required = await inProcess(init, { ABLITERATE_BLAS: "/no/such/libblas.so", ABLITERATE_REQUIRE_BLAS: "1" });
    assert.equal(required.failed, true);
    assert.match(required.stderr, /ABLITERATE_REQUIRE_BLAS=1, but the native BLAS path is not taken/);
    const off = await inProcess(init, { ABLITERATE_BLAS: "off", ABLITERATE_REQUIRE_BLAS: "1" });
    assert.equal(off.failed, false, "off is a deliberate choice: the requirement does not apply");
    assert.equal(off.stderr.includes("is not used"), false);
  });
});

describe("the BLAS self-test (#23, low)", () => {
  /** A plain row-major cblas_sgemm in JavaScript (alpha 1, beta 0), wrong by `offset` on products past `from` multiply-adds. */
  const sgemm =
    (offset = 0, from = Infinity): Sgemm =>
    (_order, transA, transB, m, n, k, _alpha, a, lda, b, ldb, _beta, c, ldc) => {
      const wrong = m * n * k > from ? offset : 0;
      for (let i = 0; i < m; i++)
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let p = 0; p < k; p++)
            s += (transA === TRANS ? a[p * lda + i] : a[i * lda + p]) * (transB === TRANS ? b[j * ldb + p] : b[p * ldb + j]);
          c[i * ldc + j] = s + wrong;
        }
    };
  it("a library right on small products and wrong on large ones is caught", () => {
    assert.ok(sgemmError(sgemm()) < 1e-5, "a correct sgemm passes");
    assert.ok(sgemmError(sgemm(0.05, 100_000)) > 1e-4, "one wrong only past 100 000 multiply-adds fails");
  });

  it("a one-row product goes to sgemv with the transposes mapped, and beta 0 clears what the output held", () => {
    /** cblas_sgemv, row-major, as the standard says: y = alpha op(A) x + beta y (so 0 * NaN stays NaN). */
    const calls: number[] = [];
    const sgemv: Sgemv = (_order, trans, m, n, alpha, a, lda, x, incx, beta, y, incy) => {
      calls.push(trans);
      const [rows, cols] = trans === TRANS ? [n, m] : [m, n];
      for (let i = 0; i < rows; i++) {
        let s = 0;
        for (let j = 0; j < cols; j++) s += (trans === TRANS ? a[j * lda + i] : a[i * lda + j]) * x[j * incx];
        y[i * incy] = alpha * s + beta * y[i * incy];
      }
    };
    const wrapped = forSmallProducts(sgemm(), sgemv);
    assert.ok(sgemmError(wrapped) < 1e-5, "right on every transpose");
    assert.deepEqual(calls.sort(), [NO_TRANS, TRANS], "the self-test's one-row products, B transposed and not, went to sgemv");
    const [k, n] = [3, 2];
    const x = Float32Array.from([1, 2, 3]);
    const w = Float32Array.from([1, 0, 0, 0, 1, 1]); // [n, k]
    const c = new Float32Array(n).fill(NaN);
    wrapped(ROW_MAJOR, NO_TRANS, TRANS, 1, n, k, 1, x, k, w, k, 0, c, n);
    assert.deepEqual([...c], [1, 5]);
  });

  it("a few rows times a weight: one sgemv per row up to 3 rows, zero rows padding to a multiple of 16 from 4 past one", () => {
    /** cblas_sgemm and cblas_sgemv, row-major, with alpha and beta as the standard says (beta 0: C is not read). */
    const gemmRows: number[] = [];
    let gemvCalls = 0;
    const reference: Sgemm = (_order, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) => {
      gemmRows.push(m);
      for (let i = 0; i < m; i++)
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let p = 0; p < k; p++)
            s += (transA === TRANS ? a[p * lda + i] : a[i * lda + p]) * (transB === TRANS ? b[j * ldb + p] : b[p * ldb + j]);
          c[i * ldc + j] = alpha * s + (beta === 0 ? 0 : beta * c[i * ldc + j]);
        }
    };
    const sgemv: Sgemv = (order, trans, m, n, alpha, a, lda, x, incx, beta, y, incy) => {
      gemvCalls++;
      // y [rows] = alpha op(A) x + beta y, as a one-row sgemm: x [1, cols] times A (stored [m, n]).
      const [rows, cols] = trans === TRANS ? [n, m] : [m, n];
      const before = Float32Array.from({ length: rows }, (_, i) => y[i * incy]);
      const out = new Float32Array(rows);
      reference(order, NO_TRANS, trans === TRANS ? NO_TRANS : TRANS, 1, rows, cols, alpha, x, cols, a, lda, 0, out, rows);
      gemmRows.pop();
      for (let i = 0; i < rows; i++) y[i * incy] = out[i] + beta * before[i];
    };
    const wrapped = forSmallProducts(reference, sgemv);
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5;
    const [n, k] = [512, 512]; // a weight: 2^18 elements
    for (const transB of [NO_TRANS, TRANS]) {
      const w = Float32Array.from({ length: n * k }, random);
      for (const [m, calls, rows] of [
        [2, 2, []],
        [3, 3, []],
        [4, 0, [16]],
        [15, 0, [16]],
        [16, 0, [16]],
        [19, 0, [19]],
        [20, 0, [32]],
      ] as [number, number, number[]][]) {
        for (const beta of [0, 0.5]) {
          // Rows with room to spare (lda, ldc past the row) and an output holding NaN or values to scale.
          const [lda, ldc] = [k + 3, n + 5];
          const a = Float32Array.from({ length: m * lda }, random);
          const start = Float32Array.from({ length: m * ldc }, () => (beta === 0 ? NaN : random()));
          const [got, want] = [start.slice(), start.slice()];
          [gemmRows.length, gemvCalls] = [0, 0];
          wrapped(ROW_MAJOR, NO_TRANS, transB, m, n, k, 0.75, a, lda, w, transB === TRANS ? k : n, beta, got, ldc);
          assert.equal(gemvCalls, calls, `${m} rows: sgemv calls`);
          assert.deepEqual(gemmRows, rows, `${m} rows: the rows sgemm was given`);
          reference(ROW_MAJOR, NO_TRANS, transB, m, n, k, 0.75, a, lda, w, transB === TRANS ? k : n, beta, want, ldc);
          for (let e = 0; e < want.length; e++) {
            const inRow = e % ldc < n;
            // Products agree to float32 rounding; what lies between rows is left as it was.
            if (inRow) assert.ok(Math.abs(got[e] - want[e]) <= 1e-5 * (1 + Math.abs(want[e])), `${m} rows, beta ${beta}, entry ${e}`);
            else assert.ok(Object.is(got[e], start[e]), `${m} rows: entry ${e} past a row's end was written`);
          }
        }
      }
    }
    // A small product (attention scores) stays with sgemm whatever its rows.
    [gemmRows.length, gemvCalls] = [0, 0];
    wrapped(ROW_MAJOR, NO_TRANS, TRANS, 5, 8, 8, 1, new Float32Array(40), 8, new Float32Array(64), 8, 0, new Float32Array(40), 8);
    assert.deepEqual([gemmRows, gemvCalls], [[5], 0]);
  });
  it("the native memory estimate counts the scratch of padded products, at its largest", () => {
    const config = parseConfig(QWEN25_05B_SHAPES);
    const arch = architectureFor(config);
    const plan = { layout: "native" as const, weightBytes: 4e9, packedBytes: 0, nativeBytes: 4e9 };
    const estimate = (batch: number, promptTokens: number, newTokens: number) =>
      estimateMemory(config, arch, plan, { batch, promptTokens, newTokens, logits: "last" }, { name: "wasm" }).nativeBytes;
    const [d, v, dMlp] = [config.hidden_size, config.vocab_size, config.intermediate_size];
    // 16 x 64 prompt rows and 16 rows a step are multiples of 16: nothing is padded.
    assert.equal(estimate(16, 64, 8), 4e9);
    assert.equal(paddingScratchFloats(16, v, d), 0);
    // 8 rows a step: the unembedding's product (the largest weight) padded to 16 rows, in and out.
    assert.equal(estimate(8, 64, 8), 4e9 + 4 * 16 * (d + v));
    // 5 prompt rows, no generation: the MLP's weights times 16 rows; the 1 logit row goes to sgemv.
    assert.equal(estimate(1, 5, 0), 4e9 + 4 * 16 * (d + dMlp));
    // 300 prompt rows go to sgemm as they are.
    assert.equal(estimate(1, 300, 0), 4e9);
  });
});
