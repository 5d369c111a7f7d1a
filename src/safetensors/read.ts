// Reading safetensors files one tensor at a time, by offset from an open file handle,
// so that a multi-gigabyte shard is never read whole into memory.
// Format: 8-byte little-endian header length N, N bytes of JSON header, then the data region.
import { constants } from "node:buffer";
import { open, type FileHandle } from "node:fs/promises";
import { notAFile } from "../files.ts";
import { largeFloat32Array } from "../pages.ts";
import { DTYPE_BYTES, decodeToFloat32, isFloatDtype } from "./dtype.ts";
import type { FileRange } from "../copy-range.ts";

export interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  /** Byte range inside the data region (after the header). */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** Absolute byte offset of the data region in the file. */
  dataStart: number;
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
}

/** Maximum header size accepted, as in the Rust reference implementation (100 MB). */
const MAX_HEADER_BYTES = 100_000_000;
/** The most elements (or bytes) one typed array holds in this Node.js. */
const MAX_ARRAY_LENGTH = constants.MAX_LENGTH;
/** How much of a tensor's bytes readFloat32 reads at a time. */
export const DECODE_PIECE_BYTES = 64 << 20;
/**
 * readFloat32's byte buffer, reused from tensor to tensor: fresh memory costs its first touch, which on some
 * machines (virtual ones) is most of a load's time.
 */
let pieceBuffer = new Uint8Array(0);

export class SafetensorsError extends Error {
  constructor(file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = "SafetensorsError";
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Parse and validate the header of an open safetensors file, as the reference Rust crate does: the header
 * is UTF-8 JSON starting with `{`, `__metadata__` maps strings to strings, and the tensors' byte ranges tile
 * the data region exactly, from 0 to its end, without gap, overlap or trailing bytes.
 */
export async function readHeader(handle: FileHandle, file: string): Promise<SafetensorsHeader> {
  const { size } = await handle.stat();
  if (size < 8)
    throw new SafetensorsError(
      file,
      `file is ${size} bytes, shorter than the 8-byte header length; it is truncated or not a safetensors file`,
    );
  const lengthBytes = Buffer.alloc(8);
  await handle.read(lengthBytes, 0, 8, 0);
  const headerLength = Number(lengthBytes.readBigUInt64LE(0));
  if (headerLength > size - 8) {
    throw new SafetensorsError(
      file,
      `header length ${headerLength} runs past the end of the file (${size} bytes); the file is truncated or not a safetensors file`,
    );
  }
  if (headerLength > MAX_HEADER_BYTES) throw new SafetensorsError(file, `header length ${headerLength} exceeds ${MAX_HEADER_BYTES} bytes`);
  const headerBytes = Buffer.alloc(headerLength);
  await handle.read(headerBytes, 0, headerLength, 8);
  let text: string;
  try {
    text = utf8.decode(headerBytes);
  } catch {
    throw new SafetensorsError(file, "header is not valid UTF-8");
  }
  if (!text.startsWith("{"))
    throw new SafetensorsError(
      file,
      `header does not start with "{" (it starts ${JSON.stringify(text.slice(0, 8))}); the header length is wrong or this is not ` +
        `a safetensors file`,
    );
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new SafetensorsError(file, `header is not valid JSON (${(error as Error).message})`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new SafetensorsError(file, "header is not a JSON object");

  const dataStart = 8 + headerLength;
  const dataSize = size - dataStart;
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      metadata = parseMetadata(file, entry);
      continue;
    }
    tensors.set(name, parseEntry(file, name, entry, dataSize));
  }
  checkTiling(file, [...tensors.values()], dataSize);
  return { dataStart, tensors, metadata };
}

function parseMetadata(file: string, entry: unknown): Record<string, string> {
  if (typeof entry !== "object" || entry === null || Array.isArray(entry))
    throw new SafetensorsError(file, `__metadata__ is not an object of strings (got ${JSON.stringify(entry)?.slice(0, 40)})`);
  for (const [k, v] of Object.entries(entry))
    if (typeof v !== "string")
      throw new SafetensorsError(file, `__metadata__.${k} is not a string (got ${JSON.stringify(v)?.slice(0, 40)})`);
  return entry as Record<string, string>;
}

function parseEntry(file: string, name: string, entry: unknown, dataSize: number): TensorInfo {
  const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
  if (typeof e !== "object" || e === null) throw new SafetensorsError(file, `tensor ${name}: header entry is not an object`);
  if (typeof e.dtype !== "string" || !(e.dtype in DTYPE_BYTES)) {
    throw new SafetensorsError(
      file,
      `tensor ${name}: unknown dtype ${JSON.stringify(e.dtype)} (known: ${Object.keys(DTYPE_BYTES).join(", ")})`,
    );
  }
  if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new SafetensorsError(file, `tensor ${name}: shape ${JSON.stringify(e.shape)} is not a list of non-negative integers`);
  }
  const offsets = e.data_offsets;
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isInteger(o) && o >= 0)) {
    throw new SafetensorsError(file, `tensor ${name}: data_offsets ${JSON.stringify(offsets)} is not [begin, end]`);
  }
  const [begin, end] = offsets as [number, number];
  const expected = (e.shape as number[]).reduce((a, b) => a * b, 1) * DTYPE_BYTES[e.dtype];
  if (end < begin || end - begin !== expected) {
    throw new SafetensorsError(
      file,
      `tensor ${name}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes, but ${e.dtype} ${JSON.stringify(e.shape)} needs ` +
        `${expected}`,
    );
  }
  if (end > dataSize) {
    throw new SafetensorsError(
      file,
      `tensor ${name}: data_offsets [${begin}, ${end}] run past the end of the data (${dataSize} bytes); the file is truncated`,
    );
  }
  return { name, dtype: e.dtype, shape: e.shape as number[], begin, end };
}

/** The tensors' byte ranges, in order, must cover [0, dataSize) exactly. */
function checkTiling(file: string, infos: TensorInfo[], dataSize: number): void {
  const sorted = [...infos].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let end = 0;
  for (const t of sorted) {
    if (t.begin < end) {
      const prev = sorted.find((p) => p !== t && p.end > t.begin && p.begin <= t.begin)!;
      throw new SafetensorsError(file, `tensors ${prev.name} [${prev.begin}, ${prev.end}] and ${t.name} [${t.begin}, ${t.end}] overlap`);
    }
    if (t.begin > end)
      throw new SafetensorsError(
        file,
        `tensor ${t.name} starts at byte ${t.begin} of the data, leaving bytes [${end}, ${t.begin}) that no tensor holds; the ` +
          `offsets are not contiguous`,
      );
    end = t.end;
  }
  if (end !== dataSize)
    throw new SafetensorsError(
      file,
      `the tensors hold ${end} bytes of data but the file has ${dataSize} after its header; the header length or the offsets are ` +
        `wrong, or the file has trailing bytes`,
    );
}

/** An open safetensors file: the header is parsed once, tensors are read on demand. */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    readonly header: SafetensorsHeader,
  ) {}

  static async open(path: string): Promise<SafetensorsFile> {
    const why = await notAFile(path);
    if (why) throw new SafetensorsError(path, why);
    let handle: FileHandle;
    try {
      handle = await open(path, "r");
    } catch (error) {
      throw new SafetensorsError(path, `cannot open (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
    }
    try {
      return new SafetensorsFile(path, handle, await readHeader(handle, path));
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  get names(): string[] {
    return [...this.header.tensors.keys()];
  }

  info(name: string): TensorInfo {
    const info = this.header.tensors.get(name);
    if (!info) throw new SafetensorsError(this.path, `no tensor named ${name}`);
    return info;
  }

  /** The tensor's raw bytes, exactly as stored. */
  async readBytes(name: string): Promise<Uint8Array> {
    const info = this.info(name);
    return this.readRange(name, 0, info.end - info.begin);
  }

  /** Bytes [start, end) of the tensor's data, for streaming a large tensor in pieces: new bytes, or read into `into` (reused). */
  async readRange(name: string, start: number, end: number, into?: Uint8Array): Promise<Uint8Array> {
    const info = this.checkRange(name, start, end);
    if (into && into.length !== end - start)
      throw new SafetensorsError(
        this.path,
        `tensor ${name}: byte range [${start}, ${end}) is ${end - start} bytes, the buffer to read it into holds ${into.length}`,
      );
    if (end - start > MAX_ARRAY_LENGTH)
      throw new SafetensorsError(
        this.path,
        `tensor ${name}: ${end - start} bytes in one piece, more than the ${MAX_ARRAY_LENGTH} one array can hold; read it in pieces`,
      );
    const bytes = into ?? new Uint8Array(end - start);
    // One read(2) returns at most about 2 GB: read until the range is whole.
    for (let done = 0; done < bytes.length;) {
      const { bytesRead } = await this.handle.read(bytes, done, bytes.length - done, this.header.dataStart + info.begin + start + done);
      if (bytesRead === 0)
        throw new SafetensorsError(this.path, `tensor ${name}: read ${done} of ${bytes.length} bytes; the file changed or is truncated`);
      done += bytesRead;
    }
    return bytes;
  }

  /** Where bytes [start, end) of the tensor's data lie in the open file, to be copied as they are. */
  fileRange(name: string, start = 0, end = this.info(name).end - this.info(name).begin): FileRange {
    const info = this.checkRange(name, start, end);
    return { handle: this.handle, start: this.header.dataStart + info.begin + start, length: end - start, path: this.path };
  }

  /** The tensor's entry, once [start, end) is known to lie within its bytes. */
  private checkRange(name: string, start: number, end: number): TensorInfo {
    const info = this.info(name);
    const size = info.end - info.begin;
    if (start < 0 || end > size || start > end)
      throw new SafetensorsError(this.path, `tensor ${name}: byte range [${start}, ${end}) is outside its ${size} bytes`);
    return info;
  }

  /** The tensor decoded to float32 (F32, F16 and BF16 only). */
  async readFloat32(name: string): Promise<Float32Array> {
    const info = this.info(name);
    if (!isFloatDtype(info.dtype))
      throw new SafetensorsError(this.path, `tensor ${name}: dtype ${info.dtype} cannot be read as float32 (F32, F16, BF16 can)`);
    const size = DTYPE_BYTES[info.dtype];
    const count = (info.end - info.begin) / size;
    if (count > MAX_ARRAY_LENGTH)
      throw new SafetensorsError(
        this.path,
        `tensor ${name} has ${count} values (shape [${info.shape.join(", ")}]), more than the ${MAX_ARRAY_LENGTH} one array can hold`,
      );
    // Decoded a piece at a time, so that no byte buffer is larger than the piece.
    const out = largeFloat32Array(count);
    const piece = Math.max(1, Math.floor(DECODE_PIECE_BYTES / size));
    // One byte buffer for the process, lent to one read at a time (another read meanwhile gets its own).
    const need = Math.min(piece, count) * size;
    const lent = pieceBuffer.length >= need ? pieceBuffer : new Uint8Array(Math.min(piece * size, Math.max(need, 2 * pieceBuffer.length)));
    pieceBuffer = new Uint8Array(0);
    try {
      for (let at = 0; at < count; at += piece) {
        const n = Math.min(piece, count - at);
        const bytes = await this.readRange(name, at * size, (at + n) * size, lent.subarray(0, n * size));
        decodeToFloat32(bytes, info.dtype, out.subarray(at, at + n));
      }
    } finally {
      if (pieceBuffer.length < lent.length) pieceBuffer = lent;
    }
    return out;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}
