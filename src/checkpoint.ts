// The weights of a Hugging Face checkpoint folder: one `model.safetensors`, or shards listed in
// `model.safetensors.index.json`. Tensors are read one at a time, by name, from whichever shard holds them.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { SafetensorsError, SafetensorsFile, type TensorInfo } from "./safetensors/read.ts";
import { checkRelativePath, exists, isReallyInside } from "./files.ts";
import type { FileRange } from "./copy-range.ts";

export const INDEX_FILE = "model.safetensors.index.json";
export const SINGLE_FILE = "model.safetensors";

export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CheckpointError";
  }
}

export interface CheckpointTensorInfo extends TensorInfo {
  /** Shard file name, relative to the checkpoint folder. */
  file: string;
}

export class CheckpointWeights {
  private constructor(
    readonly dir: string,
    /** Shard file names in order (one entry for an unsharded checkpoint). */
    readonly files: string[],
    private readonly handles: Map<string, SafetensorsFile>,
    private readonly where: Map<string, string>,
    readonly indexMetadata: Record<string, unknown> | undefined,
  ) {}

  static async open(dir: string): Promise<CheckpointWeights> {
    const indexPath = join(dir, INDEX_FILE);
    const singlePath = join(dir, SINGLE_FILE);
    let files: string[];
    let declared: Map<string, string> | undefined;
    let indexMetadata: Record<string, unknown> | undefined;
    if (await exists(indexPath)) {
      let index: { weight_map?: Record<string, string>; metadata?: Record<string, unknown> };
      try {
        index = JSON.parse(await readFile(indexPath, "utf8"));
      } catch (error) {
        throw new CheckpointError(`${indexPath}: not valid JSON (${(error as Error).message})`);
      }
      if (!index.weight_map || typeof index.weight_map !== "object" || Array.isArray(index.weight_map))
        throw new CheckpointError(`${indexPath}: has no weight_map object`);
      declared = new Map();
      for (const [name, file] of Object.entries(index.weight_map)) {
        try {
          declared.set(name, checkRelativePath(file, `${indexPath}: weight_map["${name}"]`));
        } catch (error) {
          throw new CheckpointError((error as Error).message);
        }
      }
      if (declared.size === 0) throw new CheckpointError(`${indexPath}: weight_map names no tensors`);
      files = [...new Set(declared.values())];
      for (const file of files) {
        if (!(await isReallyInside(join(dir, file), dir)))
          throw new CheckpointError(`${indexPath}: weight_map names ${file}, which lies outside ${dir} once links are followed`);
      }
      indexMetadata = index.metadata;
    } else if (await exists(singlePath)) {
      files = [SINGLE_FILE];
    } else {
      throw new CheckpointError(`${dir}: no ${SINGLE_FILE} or ${INDEX_FILE}; is this a Hugging Face safetensors checkpoint folder?`);
    }
    const handles = new Map<string, SafetensorsFile>();
    const where = new Map<string, string>();
    try {
      for (const file of files) {
        const st = await SafetensorsFile.open(join(dir, file));
        handles.set(file, st);
        for (const name of st.names) {
          const other = where.get(name);
          if (other) throw new CheckpointError(`${dir}: tensor ${name} is stored in both ${other} and ${file}`);
          where.set(name, file);
        }
      }
      if (declared) {
        for (const [name, file] of declared) {
          if (where.get(name) !== file)
            throw new CheckpointError(
              `${indexPath}: weight_map puts ${name} in ${file}, but ${
                where.has(name) ? `it is in ${where.get(name)}` : "no " + "shard holds it"
              }`,
            );
        }
      }
    } catch (error) {
      for (const h of handles.values()) await h.close();
      throw error;
    }
    return new CheckpointWeights(dir, files, handles, where, indexMetadata);
  }

  get names(): string[] {
    return [...this.where.keys()];
  }

  has(name: string): boolean {
    return this.where.has(name);
  }

  private shard(name: string): SafetensorsFile {
    const file = this.where.get(name);
    if (!file) throw new CheckpointError(`${this.dir}: missing tensor ${name}`);
    return this.handles.get(file)!;
  }

  info(name: string): CheckpointTensorInfo {
    return { ...this.shard(name).info(name), file: this.where.get(name)! };
  }

  /** Names held by one shard, in the order of its data. */
  namesIn(file: string): string[] {
    const st = this.handles.get(file);
    if (!st) throw new CheckpointError(`${this.dir}: no shard ${file}`);
    return [...st.header.tensors.values()].sort((a, b) => a.begin - b.begin).map((t) => t.name);
  }

  shardMetadata(file: string): Record<string, string> {
    return this.handles.get(file)?.header.metadata ?? {};
  }

  readBytes(name: string): Promise<Uint8Array> {
    return this.shard(name).readBytes(name);
  }

  readRange(name: string, start: number, end: number, into?: Uint8Array): Promise<Uint8Array> {
    return this.shard(name).readRange(name, start, end, into);
  }

  fileRange(name: string, start?: number, end?: number): FileRange {
    return this.shard(name).fileRange(name, start, end);
  }

  readFloat32(name: string): Promise<Float32Array> {
    return this.shard(name).readFloat32(name);
  }

  async close(): Promise<void> {
    for (const h of this.handles.values()) await h.close();
  }
}

export { SafetensorsError };
