// Large arrays backed by transparent huge pages where Linux allows them on request (madvise, the common
// setting): a page's first touch, not the copy into it, is most of the time of filling fresh memory on some
// machines (virtual ones: 2.7-5.9 s for 1 GiB in 4 KiB pages, 0.6-1.6 s in 2 MiB pages, measured). Elsewhere,
// or when koffi or libc cannot be loaded, an ordinary array.
import { createRequire } from "node:module";

/** Below this, an ordinary allocation: a huge page is 2 MiB. */
const HUGE_FROM_BYTES = 8 << 20;
const PAGE = 4096n;
const MADV_HUGEPAGE = 14;

type Madvise = (addr: bigint, length: bigint, advice: number) => number;
let advise: { madvise: Madvise; address: (value: unknown) => bigint } | null | undefined;

function adviser(): typeof advise {
  if (advise !== undefined) return advise;
  advise = null;
  if (process.platform !== "linux") return advise;
  try {
    const koffi = createRequire(import.meta.url)("koffi") as typeof import("koffi");
    const madvise = koffi.load("libc.so.6").func("int madvise(uintptr_t addr, size_t length, int advice)") as Madvise;
    advise = { madvise, address: (value) => koffi.address(value) as bigint };
  } catch {
    // Another C library, or koffi missing: ordinary pages.
  }
  return advise;
}

/** A new zeroed Float32Array of `count` values; large ones asked to be backed by huge pages (advice only). */
export function largeFloat32Array(count: number): Float32Array {
  return advised(new Float32Array(count));
}

/** A new zeroed Uint16Array of `count` values (16-bit weights as stored), advised as `largeFloat32Array`. */
export function largeUint16Array(count: number): Uint16Array {
  return advised(new Uint16Array(count));
}

function advised<T extends Float32Array | Uint16Array>(out: T): T {
  const a = out.byteLength >= HUGE_FROM_BYTES ? adviser() : null;
  if (a) {
    // The whole pages inside the array: madvise takes a page-aligned start.
    const start = a.address(out);
    const first = (start + PAGE - 1n) & ~(PAGE - 1n);
    const end = (start + BigInt(out.byteLength)) & ~(PAGE - 1n);
    if (end > first) a.madvise(first, end - first, MADV_HUGEPAGE); // refused (e.g. THP off): ordinary pages
  }
  return out;
}
