// Writing GGUF v3 files (the format of llama.cpp, Ollama and LM Studio): a header of typed key-values and
// tensor descriptions, then each tensor's data aligned to 32 bytes. Every offset follows from the shapes and
// types, so the header is written first and the tensors are then streamed one at a time: memory holds one
// tensor, not the model. The file is written under a temporary name and renamed into place when complete.
// Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
import { exists, writeFileWhole } from "../../files.ts";
import { encodeFromFloat32, floatToHalf } from "../../safetensors/dtype.ts";

/** ggml tensor types written here, with ggml's numbers. */
export const GGML_TYPES = { F32: 0, F16: 1, Q8_0: 8, BF16: 30 } as const;
export type GgmlType = keyof typeof GGML_TYPES;

/** Values per block and bytes per block of each type. */
const BLOCK: Record<GgmlType, { values: number; bytes: number }> = {
  F32: { values: 1, bytes: 4 },
  F16: { values: 1, bytes: 2 },
  BF16: { values: 1, bytes: 2 },
  Q8_0: { values: 32, bytes: 34 }, // one f16 scale, then 32 signed bytes
};

export const GGUF_ALIGNMENT = 32;

/** A metadata value with its GGUF type. Arrays hold one type. */
export type GgufValue =
  | { type: "u32" | "i32" | "f32" | "u64"; value: number }
  | { type: "bool"; value: boolean }
  | { type: "string"; value: string }
  | { type: "array"; of: "string"; values: readonly string[] }
  | { type: "array"; of: "i32" | "f32" | "u32"; values: ArrayLike<number> }
  | { type: "array"; of: "bool"; values: readonly boolean[] };

export const u32 = (value: number): GgufValue => ({ type: "u32", value });
export const f32 = (value: number): GgufValue => ({ type: "f32", value });
export const str = (value: string): GgufValue => ({ type: "string", value });
export const bool = (value: boolean): GgufValue => ({ type: "bool", value });

const VALUE_TYPE = {
  u8: 0,
  i8: 1,
  u16: 2,
  i16: 3,
  u32: 4,
  i32: 5,
  f32: 6,
  bool: 7,
  string: 8,
  array: 9,
  u64: 10,
  i64: 11,
  f64: 12,
} as const;

export interface GgufTensor {
  /** GGUF name, e.g. `blk.0.attn_q.weight`. */
  name: string;
  /** Shape in PyTorch's (row-major) order, e.g. [out_features, in_features]; written reversed, as ggml counts dimensions. */
  shape: readonly number[];
  type: GgmlType;
  /**
   * The tensor's values in row-major order, produced when the writer reaches it: all at once, or as pieces of
   * whole rows in order (each encoded and written before the next is asked for, so memory holds one piece).
   */
  values: () => Promise<Float32Array> | AsyncIterable<Float32Array>;
}

/** Bytes a tensor of `type` and `shape` takes in the file. */
export function tensorBytes(type: GgmlType, shape: readonly number[]): number {
  const count = shape.reduce((a, b) => a * b, 1);
  const { values, bytes } = BLOCK[type];
  return (count / values) * bytes;
}

/** Whether a tensor of this shape can be stored as `type` (block types need rows that are whole blocks). */
export function fitsType(type: GgmlType, shape: readonly number[]): boolean {
  return shape.length > 0 && shape[shape.length - 1] % BLOCK[type].values === 0;
}

/**
 * Q8_0 as llama.cpp's reference quantiser (`quantize_row_q8_0_ref`) computes it: per block of 32 values,
 * d = max|x| / 127 stored as f16, and q = round(x / d) with halves rounded away from zero.
 */
export function quantizeQ8_0(values: Float32Array): Uint8Array {
  if (values.length % 32 !== 0) throw new Error(`Q8_0 needs a multiple of 32 values, got ${values.length}`);
  const blocks = values.length / 32;
  const out = new Uint8Array(blocks * 34);
  const q = new Int8Array(out.buffer);
  for (let b = 0, i = 0; b < blocks; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) {
      const a = Math.abs(values[i + j]);
      if (a > amax) amax = a;
    }
    const d = Math.fround(amax / 127);
    const id = d !== 0 ? Math.fround(1 / d) : 0; // float32, as C computes 1.0f/d
    const half = floatToHalf(d);
    const at = b * 34;
    out[at] = half & 0xff;
    out[at + 1] = half >>> 8;
    for (let j = 0; j < 32; j++, i++) {
      const x = Math.fround(values[i] * id);
      q[at + 2 + j] = x < 0 ? -Math.round(-x) : Math.round(x); // roundf: halves away from zero
    }
  }
  return out;
}

/** Encode row-major float32 values as `type`. */
export function encodeTensor(values: Float32Array, type: GgmlType): Uint8Array {
  if (type === "Q8_0") return quantizeQ8_0(values);
  return encodeFromFloat32(values, type);
}

/** Little-endian byte buffer that grows as the header is built. */
class Bytes {
  private chunks: Buffer[] = [];
  length = 0;
  push(b: Buffer): void {
    this.chunks.push(b);
    this.length += b.length;
  }
  u32(n: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n);
    this.push(b);
  }
  u64(n: number): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(n));
    this.push(b);
  }
  string(s: string): void {
    const b = Buffer.from(s, "utf8");
    this.u64(b.length);
    this.push(b);
  }
  scalar(type: "u32" | "i32" | "f32" | "u64" | "bool", v: number | boolean): void {
    const b = Buffer.alloc(type === "u64" ? 8 : type === "bool" ? 1 : 4);
    if (type === "u32") b.writeUInt32LE(v as number);
    else if (type === "i32") b.writeInt32LE(v as number);
    else if (type === "f32") b.writeFloatLE(v as number);
    else if (type === "u64") b.writeBigUInt64LE(BigInt(v as number));
    else b.writeUInt8(v ? 1 : 0);
    this.push(b);
  }
  concat(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** The header: magic, version, counts, key-values and tensor descriptions, padded to the alignment. */
export function encodeGgufHeader(
  metadata: ReadonlyMap<string, GgufValue>,
  tensors: readonly Pick<GgufTensor, "name" | "shape" | "type">[],
): { header: Buffer; offsets: number[] } {
  const out = new Bytes();
  out.push(Buffer.from("GGUF", "ascii"));
  out.u32(3);
  out.u64(tensors.length);
  out.u64(metadata.size);
  for (const [key, v] of metadata) {
    out.string(key);
    out.u32(VALUE_TYPE[v.type]);
    if (v.type === "string") out.string(v.value);
    else if (v.type === "array") {
      out.u32(VALUE_TYPE[v.of]);
      out.u64(v.values.length);
      if (v.of === "string") for (const s of v.values as readonly string[]) out.string(s);
      else for (let i = 0; i < v.values.length; i++) out.scalar(v.of, (v.values as ArrayLike<number | boolean>)[i] as number);
    } else out.scalar(v.type, v.value);
  }
  const offsets: number[] = [];
  let offset = 0;
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) throw new Error(`GGUF tensor ${t.name} appears twice`);
    names.add(t.name);
    if (!fitsType(t.type, t.shape))
      throw new Error(
        `GGUF tensor ${t.name} of shape [${t.shape}] cannot be stored as ${t.type} (rows must be a multiple of ${BLOCK[t.type].values})`,
      );
    out.string(t.name);
    out.u32(t.shape.length);
    for (let i = t.shape.length - 1; i >= 0; i--) out.u64(t.shape[i]);
    out.u32(GGML_TYPES[t.type]);
    out.u64(offset);
    offsets.push(offset);
    offset += Math.ceil(tensorBytes(t.type, t.shape) / GGUF_ALIGNMENT) * GGUF_ALIGNMENT;
  }
  const header = out.concat();
  const padded = Math.ceil(header.length / GGUF_ALIGNMENT) * GGUF_ALIGNMENT;
  return { header: Buffer.concat([header, Buffer.alloc(padded - header.length)]), offsets };
}

/**
 * Write a GGUF file: the header, then each tensor's values (produced one at a time) encoded as its type.
 * An existing file is refused unless `overwrite`; an interrupted write leaves no file at `path`.
 */
export async function writeGguf(
  path: string,
  metadata: ReadonlyMap<string, GgufValue>,
  tensors: readonly GgufTensor[],
  options: { overwrite?: boolean; onTensor?: (name: string, index: number) => void } = {},
): Promise<number> {
  if (!options.overwrite && (await exists(path)))
    throw new Error(`${path} exists already; pass --force (force: true in code) to replace it`);
  const { header } = encodeGgufHeader(metadata, tensors);
  return writeFileWhole(
    path,
    async (put) => {
      await put(header);
      for (const [i, t] of tensors.entries()) {
        const produced = t.values();
        const pieces = produced instanceof Promise ? [await produced] : produced;
        const count = t.shape.reduce((a, b) => a * b, 1);
        let written = 0;
        let bytes = 0;
        for await (const values of pieces) {
          written += values.length;
          if (written > count) break;
          const encoded = encodeTensor(values, t.type);
          await put(encoded);
          bytes += encoded.length;
        }
        if (written !== count)
          throw new Error(
            `GGUF tensor ${t.name}: ${written > count ? `more than ${count}` : written} values for shape [${t.shape}] (${count})`,
          );
        const pad = Math.ceil(bytes / GGUF_ALIGNMENT) * GGUF_ALIGNMENT - bytes;
        if (pad > 0) await put(new Uint8Array(pad));
        options.onTensor?.(t.name, i);
      }
    },
    { overwrite: options.overwrite, sync: true, taken: () => `${path} exists already; pass --force (force: true in code) to replace it` },
  );
}
