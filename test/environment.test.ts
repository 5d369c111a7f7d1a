// The environment settings users set by hand do what they say (#23, the low items).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, it } from "node:test";
import { PACKAGE_ROOT } from "../src/paths.ts";
import { sgemmError, withGemv, type Sgemv } from "../src/blas/library.ts";
import { NO_TRANS, ROW_MAJOR, TRANS, type Sgemm } from "../src/blas/sgemm.ts";

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
    const wrapped = withGemv(sgemm(), sgemv);
    assert.ok(sgemmError(wrapped) < 1e-5, "right on every transpose");
    assert.deepEqual(calls.sort(), [NO_TRANS, TRANS], "the self-test's one-row products, B transposed and not, went to sgemv");
    const [k, n] = [3, 2];
    const x = Float32Array.from([1, 2, 3]);
    const w = Float32Array.from([1, 0, 0, 0, 1, 1]); // [n, k]
    const c = new Float32Array(n).fill(NaN);
    wrapped(ROW_MAJOR, NO_TRANS, TRANS, 1, n, k, 1, x, k, w, k, 0, c, n);
    assert.deepEqual([...c], [1, 5]);
  });
});
