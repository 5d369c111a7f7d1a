// When a product of a few rows times a weight is padded with zero rows for sgemm (`forSmallProducts` in
// library.ts), and the scratch memory that takes: one rule, for the product itself and for the memory estimate.

/** Weights from this many elements up take the small-product paths; smaller products stay with sgemm. */
export const WEIGHT_ELEMENTS = 1 << 18;
/** Up to this many rows, one sgemv per row. */
export const GEMV_ROWS = 3;
/** Rows are padded to a multiple of this below PAD_LIMIT rows. */
const PAD_TO = 16;
const PAD_LIMIT = 256;

/**
 * The rows an m-row product with a weight of n x k values is padded to, or undefined where it is not padded
 * (one row, sgemv rows, a small weight, many rows, or rows just past a multiple of 16, which sgemm takes as fast).
 */
export function paddedRows(m: number, n: number, k: number): number | undefined {
  if (m <= GEMV_ROWS || n * k < WEIGHT_ELEMENTS || m >= PAD_LIMIT || m % PAD_TO < 4) return undefined;
  return Math.ceil(m / PAD_TO) * PAD_TO;
}

/** Float32 values of scratch a padded m-row product with an n x k weight needs: the padded rows in and out. */
export function paddingScratchFloats(m: number, n: number, k: number): number {
  const padded = paddedRows(m, n, k);
  return padded === undefined ? 0 : padded * (k + n);
}
