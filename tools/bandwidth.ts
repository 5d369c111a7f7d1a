// The machine's read bandwidth, the ceiling of a decode step that streams every weight once: BLAS's
// cblas_sasum (a streaming read, no writes) over 1 GiB, through koffi, best of 7. memcpy reads and writes, so
// its rate (10-15 GB/s on a small VM) is no ceiling for a step that only reads.
import { blasFunction } from "./blas-functions.ts";

type Sasum = (n: number, x: Float32Array, incx: number) => number;

/** GB/s read by cblas_sasum over 1 GiB; throws naming the libraries tried when none loads. */
export function readBandwidthGBs(): number {
  const sasum = blasFunction<Sasum>("float cblas_sasum(int n, const float *x, int incx)", "the read-bandwidth measure");
  const values = new Float32Array(256 * 1024 * 1024).fill(1); // 1 GiB, every page touched
  let best = Infinity;
  for (let i = 0; i < 7; i++) {
    const start = performance.now();
    const sum = sasum(values.length, values, 1);
    best = Math.min(best, performance.now() - start);
    // A float32 sum of ones: exact to float32's rounding of the running sum.
    if (Math.abs(sum - values.length) > 1e-5 * values.length) throw new Error(`sasum read ${sum}, expected ${values.length}`);
  }
  return values.byteLength / (best / 1000) / 1e9;
}
