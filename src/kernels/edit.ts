// The export's edit kernels (edit.wat, built into edit.wasm): one WebAssembly instance per user at a time,
// each with its own memory, kept per thread and reused. See edit.wat for what each kernel computes; they
// equal the JavaScript kernels of projection.ts and dtype.ts bit for bit (test/kernels.test.ts).
import { readFileSync } from "node:fs";

interface Exports {
  memory: WebAssembly.Memory;
  accumulate(acc: number, row: number, a: number, n: number): void;
  subtract_scaled(out: number, row: number, a: number, vec: number, n: number): void;
  dot(row: number, vec: number, n: number): number;
  accumulate_bf16(acc: number, row: number, a: number, n: number): void;
  subtract_scaled_bf16(out: number, row: number, a: number, vec: number, n: number): void;
  dot_bf16(row: number, vec: number, n: number): number;
  accumulate_norms(before: number, after: number, row: number, a: number, coef: number, n: number): void;
  subtract_scaled_times(out: number, row: number, a: number, vec: number, factors: number, n: number): void;
  row_norms(sums: number, row: number, c: number, vec: number, n: number): void;
  widen_bf16(out: number, row: number, n: number): void;
  narrow_bf16(out: number, row: number, n: number): void;
}

let compiled: WebAssembly.Module | undefined;
const free: EditKernels[] = [];

const PAGE = 65536;
/** Instances with up to this much memory are kept for reuse. */
const KEEP_BYTES = 96 * 1024 * 1024;

/** One instance of the kernels and its memory, laid out by the caller in 16-byte aligned regions. */
export class EditKernels {
  readonly k: Exports;
  private constructor() {
    compiled ??= new WebAssembly.Module(readFileSync(new URL("./edit.wasm", import.meta.url)));
    this.k = new WebAssembly.Instance(compiled, {}).exports as unknown as Exports;
  }

  /** An instance with at least `bytes` of memory, for the caller alone until `release`. */
  static acquire(bytes: number): EditKernels {
    const kernels = free.pop() ?? new EditKernels();
    const have = kernels.k.memory.buffer.byteLength;
    if (bytes > have) kernels.k.memory.grow(Math.ceil((bytes - have) / PAGE));
    return kernels;
  }

  /** Give the instance back for reuse; one grown past KEEP_BYTES (a large tensor held whole) is dropped instead. */
  release(): void {
    if (this.k.memory.buffer.byteLength <= KEEP_BYTES) free.push(this);
  }

  /** The memory's bytes (a new view: growing the memory detaches earlier ones). */
  get bytes(): Uint8Array {
    return new Uint8Array(this.k.memory.buffer);
  }

  f32(ptr: number, n: number): Float32Array {
    return new Float32Array(this.k.memory.buffer, ptr, n);
  }

  f64(ptr: number, n: number): Float64Array {
    return new Float64Array(this.k.memory.buffer, ptr, n);
  }
}

/** Consecutive 16-byte aligned regions of the given byte sizes: their offsets and the total. */
export function layout(...sizes: number[]): { at: number[]; total: number } {
  const at: number[] = [];
  let total = 0;
  for (const size of sizes) {
    at.push(total);
    total += Math.ceil(size / 16) * 16;
  }
  return { at, total };
}
