// Weights read where they lie in the checkpoint's file: the file mapped into memory (mmap) instead of read
// into new memory, so a load reads nothing until a product first touches the weights, and then straight from
// the page cache, without a copy or the first touch of fresh memory (llama.cpp loads the same way). The
// mapping is private, copy-on-write: a write into the words changes this process's copy, never the file.
// One mapping per file, shared by its tensors, unmapped once nothing holds a view of it. Where mmap cannot be
// had (not Linux, koffi or libc missing, ABLITERATE_MAP_WEIGHTS=off, a tensor not aligned to its element
// size), the caller reads the bytes as before.
// A file mapped while loaded must not be truncated or rewritten in place meanwhile (replacing it, as the
// export does, is safe): the pages it loses would fault.
import type { FileHandle } from "node:fs/promises";
import { fstatSync } from "node:fs";
import { createRequire } from "node:module";
import type { FileRange } from "./copy-range.ts";

const PROT_READ = 1;
const PROT_WRITE = 2;
const MAP_PRIVATE = 2;
/** mmap's MAP_FAILED, (void *) -1, as an address. */
const MAP_FAILED = (1n << 64n) - 1n;

interface Libc {
  mmap: (addr: null, length: number, prot: number, flags: number, fd: number, offset: number) => unknown;
  munmap: (addr: unknown, length: number) => number;
  address: (pointer: unknown) => bigint;
  view: (pointer: unknown, length: number) => ArrayBuffer;
}

let libc: Libc | null | undefined;

function loadLibc(): Libc | null {
  if (libc !== undefined) return libc;
  libc = null;
  if (process.platform !== "linux") return libc;
  try {
    const koffi = createRequire(import.meta.url)("koffi") as typeof import("koffi");
    const lib = koffi.load("libc.so.6");
    libc = {
      mmap: lib.func("void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)") as Libc["mmap"],
      munmap: lib.func("int munmap(void *addr, size_t length)") as Libc["munmap"],
      address: (pointer) => koffi.address(pointer) as bigint,
      view: (pointer, length) => koffi.view(pointer, length),
    };
  } catch {
    // Another C library, or koffi missing: the weights are read.
  }
  return libc;
}

/** Each open file's mapping (the file's bytes from offset 0), while the handle is referenced. */
const mappings = new WeakMap<FileHandle, ArrayBuffer>();
/** Unmaps a mapping once its buffer, and so every view of it, is collected. */
const unmapper = new FinalizationRegistry<{ pointer: unknown; length: number }>(({ pointer, length }) => {
  libc?.munmap(pointer, length);
});

/** Whether weights are mapped: ABLITERATE_MAP_WEIGHTS=off reads them instead. */
function mapping(setting = process.env.ABLITERATE_MAP_WEIGHTS): boolean {
  if (setting === undefined || setting === "" || setting === "on") return true;
  if (setting === "off") return false;
  throw new Error(`ABLITERATE_MAP_WEIGHTS must be on or off, got "${setting}"`);
}

function fileBuffer(handle: FileHandle): ArrayBuffer | undefined {
  const known = mappings.get(handle);
  if (known) return known;
  const c = loadLibc();
  if (!c) return undefined;
  const length = fstatSync(handle.fd).size;
  if (length === 0) return undefined;
  const pointer = c.mmap(null, length, PROT_READ | PROT_WRITE, MAP_PRIVATE, handle.fd, 0);
  if (pointer === null || c.address(pointer) === MAP_FAILED) return undefined;
  const buffer = c.view(pointer, length);
  unmapper.register(buffer, { pointer, length });
  mappings.set(handle, buffer);
  return buffer;
}

/**
 * The 16-bit words of a file range, as a view of the file mapped copy-on-write; undefined where it cannot be
 * mapped (see above), and the caller reads the range instead.
 */
export function mappedWords(range: FileRange): Uint16Array | undefined {
  if (!mapping() || range.start % 2 !== 0 || range.length % 2 !== 0) return undefined;
  const buffer = fileBuffer(range.handle);
  if (!buffer || range.start + range.length > buffer.byteLength) return undefined;
  return new Uint16Array(buffer, range.start, range.length / 2);
}
