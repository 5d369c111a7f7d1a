// sgemm by its definition, for tests of the native path's products against a reference.
import assert from "node:assert/strict";
import { NO_TRANS, ROW_MAJOR, TRANS, type Sgemm } from "../../src/blas/sgemm.ts";

/** sgemm by its definition (row-major, A not transposed), each entry summed in order in float64, then rounded to float32. */
export const referenceSgemm: Sgemm = (order, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) => {
  assert.equal(order, ROW_MAJOR);
  assert.equal(transA, NO_TRANS);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[i * lda + p] * (transB === TRANS ? b[j * ldb + p] : b[p * ldb + j]);
      c[i * ldc + j] = alpha * s + (beta === 0 ? 0 : beta * c[i * ldc + j]);
    }
};
