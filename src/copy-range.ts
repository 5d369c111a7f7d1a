// Copying a byte range from one open file into another. On Linux, `copy_file_range(2)` (called through koffi on a
// thread of its own) moves the bytes inside the kernel, with no copy through this process's memory: about
// twice as fast as reading and writing them. Elsewhere, or when the kernel refuses (another file system,
// an old kernel) or ABLITERATE_COPY_RANGE=off, the bytes go through two buffers in turn instead.
import type { FileHandle } from "node:fs/promises";
import { createRequire } from "node:module";

/** A byte range of an open file, to be copied as it is. */
export interface FileRange {
  handle: FileHandle;
  start: number;
  length: number;
  /** The file's path, for messages. */
  path: string;
}

export const isFileRange = (x: unknown): x is FileRange =>
  typeof x === "object" && x !== null && "handle" in x && "start" in x && "length" in x;

type CopyFileRange = {
  async(
    fdIn: number,
    offIn: number[],
    fdOut: number,
    offOut: number[],
    len: number,
    flags: number,
    done: (error: Error | null, copied: number | bigint) => void,
  ): void;
};

let native: CopyFileRange | null | undefined;
let why = "";

/** The kernel's copy_file_range, or null where there is none (or it is turned off). */
function copyFileRange(): CopyFileRange | null {
  if (native !== undefined) return native;
  native = null;
  if (process.platform !== "linux") why = `not on ${process.platform}`;
  else if (["off", "0", "false", "no"].includes((process.env.ABLITERATE_COPY_RANGE ?? "").toLowerCase()))
    why = `off (ABLITERATE_COPY_RANGE=${process.env.ABLITERATE_COPY_RANGE})`;
  else {
    try {
      const koffi = createRequire(import.meta.url)("koffi") as typeof import("koffi");
      const libc = koffi.load("libc.so.6");
      native = libc.func(
        "int64_t copy_file_range(int fd_in, _Inout_ int64_t *off_in, int fd_out, _Inout_ int64_t *off_out, size_t len, unsigned int flags)",
      ) as unknown as CopyFileRange;
    } catch (error) {
      why = `unavailable (${(error as Error).message.split("\n")[0]})`; // no koffi, no glibc: the buffered copy below
    }
  }
  return native;
}

/** "copy_file_range" when unedited bytes are copied in the kernel, else why not. */
export function kernelCopy(): string {
  return copyFileRange() ? "copy_file_range" : why;
}

/** Pieces a range is copied in: progress and cancellation points, and the buffers' size in the fallback. */
const PIECE_BYTES = 16 * 1024 * 1024;

/**
 * Copy `range` into `out` at `position`; resolves with the number of bytes copied (range.length).
 * `buffered` skips copy_file_range.
 */
export async function copyRange(
  range: FileRange,
  out: FileHandle,
  position: number,
  options: { buffered?: boolean } = {},
): Promise<number> {
  let done = 0;
  const call = options.buffered ? null : copyFileRange();
  if (call) {
    while (done < range.length) {
      const len = Math.min(PIECE_BYTES, range.length - done);
      const copied = await new Promise<number>((resolve) =>
        call.async(range.handle.fd, [range.start + done], out.fd, [position + done], len, 0, (error, n) => resolve(error ? -1 : Number(n))),
      );
      if (copied <= 0) break; // refused (or the source ended early): the rest goes through buffers, which says why
      done += copied;
    }
  }
  const buffers = [new Uint8Array(Math.min(PIECE_BYTES, range.length - done)), new Uint8Array(Math.min(PIECE_BYTES, range.length - done))];
  let writing: Promise<unknown> = Promise.resolve();
  for (let turn = 0; done < range.length; turn++) {
    const buffer = buffers[turn % 2].subarray(0, Math.min(PIECE_BYTES, range.length - done));
    const { bytesRead } = await range.handle.read(buffer, 0, buffer.length, range.start + done);
    if (bytesRead !== buffer.length)
      throw new Error(
        `${range.path}: read ${bytesRead} of ${buffer.length} bytes at ${range.start + done}; the file changed or is truncated`,
      );
    await writing;
    writing = out.write(buffer, 0, buffer.length, position + done);
    done += buffer.length;
  }
  await writing;
  return done;
}
