// Writing safetensors files and sharded checkpoints. Tensors are produced one at a time by
// callbacks, so writing a large checkpoint needs memory for one tensor, not for the model.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { isFileRange, type FileRange } from "../copy-range.ts";
import { exists, writeFileWhole } from "../files.ts";
import { DTYPE_BYTES, encodeFromFloat32, type FloatDtype } from "./dtype.ts";

export interface TensorToWrite {
  name: string;
  dtype: string;
  shape: number[];
  /**
   * The tensor's `byteLength(dtype, shape)` bytes, little-endian: all at once, or as an async
   * iterable of consecutive pieces (a large tensor is then never held whole). A piece is bytes, or a byte
   * range of an open file copied as it is (without passing through this process where the system allows).
   * A piece is written while the next one is produced: memory a producer reuses must take turns between two
   * buffers (a piece stays unchanged until the writer asks for the one after next).
   */
  bytes: () => Promise<Uint8Array> | Uint8Array | AsyncIterable<Uint8Array | FileRange>;
}

export function byteLength(dtype: string, shape: number[]): number {
  const perElement = DTYPE_BYTES[dtype];
  if (perElement === undefined) throw new Error(`unknown safetensors dtype ${dtype}`);
  return shape.reduce((a, b) => a * b, 1) * perElement;
}

/** A float32 tensor to be stored as `dtype` (rounded to nearest even for F16 and BF16). */
export function floatTensor(name: string, values: Float32Array, shape: number[], dtype: FloatDtype = "F32"): TensorToWrite {
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== values.length) throw new Error(`${name}: ${values.length} values do not fill shape [${shape.join(", ")}] (${count})`);
  return { name, dtype, shape, bytes: () => encodeFromFloat32(values, dtype) };
}

/** The JSON header, padded with spaces so the data region starts on an 8-byte boundary. */
export function encodeHeader(tensors: TensorToWrite[], metadata?: Record<string, string>): Buffer {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata))
      if (typeof v !== "string")
        throw new Error(`metadata ${k} must be a string (safetensors metadata maps strings to strings), got ${JSON.stringify(v)}`);
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const t of tensors) {
    if (t.name === "__metadata__") throw new Error(`tensor name __metadata__ is reserved`);
    if (Object.hasOwn(header, t.name)) throw new Error(`tensor ${t.name} appears twice`);
    const size = byteLength(t.dtype, t.shape);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  const json = Buffer.from(JSON.stringify(header), "utf8");
  const padded = Math.ceil(json.length / 8) * 8;
  return Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
}

/**
 * Write one safetensors file, streaming each tensor's bytes after the header. The file is written under a
 * temporary name and moved into place only once complete, so an interrupted write leaves nothing that
 * looks whole. An existing file is refused unless `overwrite`.
 */
export async function writeSafetensors(
  path: string,
  tensors: TensorToWrite[],
  metadata?: Record<string, string>,
  options: { overwrite?: boolean } = {},
): Promise<void> {
  const header = encodeHeader(tensors, metadata);
  const taken = () => `${path} exists already; choose another path or allow overwriting (EEXIST)`;
  if (!options.overwrite && (await exists(path))) throw new Error(taken());
  await writeFileWhole(
    path,
    async (put, copy) => {
      const length = Buffer.alloc(8);
      length.writeBigUInt64LE(BigInt(header.length));
      await put(length);
      await put(header);
      // One write in flight while the next piece is produced (reading, editing), so the two overlap.
      let writing: Promise<void> = Promise.resolve();
      const send = async (piece: Uint8Array | FileRange) => {
        await writing;
        writing = isFileRange(piece) ? copy(piece) : put(piece);
      };
      try {
        for (const t of tensors) {
          const produced = await t.bytes();
          const expected = byteLength(t.dtype, t.shape);
          let written = 0;
          const mismatch = (count: string) =>
            new Error(`${path}: tensor ${t.name} produced ${count} bytes, expected ${expected} for ${t.dtype} [${t.shape.join(", ")}]`);
          for await (const piece of produced instanceof Uint8Array ? [produced] : produced) {
            if (written + piece.length > expected) throw mismatch(`more than ${expected}`);
            await send(piece);
            written += piece.length;
          }
          if (written !== expected) throw mismatch(String(written));
        }
        await writing;
      } catch (error) {
        await writing.catch(() => {}); // no write outlives the file handle
        throw error;
      }
    },
    { overwrite: options.overwrite, taken },
  );
}

export interface ShardPlan {
  file: string;
  tensors: TensorToWrite[];
}

/** Group tensors, in order, into shards of at most `maxShardBytes` (a larger tensor gets a shard of its own). */
export function planShards(tensors: TensorToWrite[], maxShardBytes: number): ShardPlan[] {
  const groups: TensorToWrite[][] = [];
  let current: TensorToWrite[] = [];
  let size = 0;
  for (const t of tensors) {
    const bytes = byteLength(t.dtype, t.shape);
    if (current.length > 0 && size + bytes > maxShardBytes) {
      groups.push(current);
      current = [];
      size = 0;
    }
    current.push(t);
    size += bytes;
  }
  if (current.length > 0 || groups.length === 0) groups.push(current);
  if (groups.length === 1) return [{ file: "model.safetensors", tensors: groups[0] }];
  const n = String(groups.length).padStart(5, "0");
  return groups.map((g, i) => ({ file: `model-${String(i + 1).padStart(5, "0")}-of-${n}.safetensors`, tensors: g }));
}

/**
 * Write a checkpoint's weights into `dir` as Hugging Face does: one `model.safetensors`, or
 * shards named `model-0000i-of-0000n.safetensors` with `model.safetensors.index.json`.
 * `shards` may be given to keep a source checkpoint's layout.
 */
export async function writeCheckpointWeights(
  dir: string,
  shards: ShardPlan[],
  metadata: Record<string, string> = { format: "pt" },
): Promise<void> {
  for (const shard of shards) await writeSafetensors(join(dir, shard.file), shard.tensors, metadata);
  if (shards.length > 1) {
    const weightMap: Record<string, string> = {};
    let totalSize = 0;
    for (const shard of shards) {
      for (const t of shard.tensors) {
        weightMap[t.name] = shard.file;
        totalSize += byteLength(t.dtype, t.shape);
      }
    }
    const index = { metadata: { total_size: totalSize }, weight_map: weightMap };
    await writeFile(join(dir, "model.safetensors.index.json"), JSON.stringify(index, null, 2) + "\n");
  }
}
