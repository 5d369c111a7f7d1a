// Stage 6: write an abliterated Hugging Face checkpoint. The source is read one tensor at a
// time: tensors that are not edited are copied byte for byte, edited ones are orthogonalised and
// written back in their source dtype, in the source's shard layout. The export is written to a
// temporary folder beside the output and renamed at the end, so an interrupted export leaves
// nothing that looks complete; the source folder is never written to.
import { copyFile, mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { basename, dirname, join, relative, resolve, isAbsolute } from "node:path";
import { applyEdits, modify } from "jsonc-parser";
import { INDEX_FILE } from "../checkpoint.ts";
import { tiedEmbeddings } from "../config.ts";
import { exists } from "../files.ts";
import { openCheckpoint, type Checkpoint } from "../load.ts";
import { roleKeys } from "../models/tensors.ts";
import { checkWidth, type UnitVector } from "../projection.ts";
import { isFloatDtype, type FloatDtype } from "../safetensors/dtype.ts";
import { writeSafetensors, type TensorToWrite } from "../safetensors/write.ts";
import { checkOrthogonalizeOptions, orthogonalizeStream, residualWriterKind, STREAM_CHUNK_BYTES, writerDirection, type OrthogonalizeOptions } from "./orthogonalize.ts";

export interface ExportOptions extends OrthogonalizeOptions {
  /** Replace a non-empty output folder. */
  force?: boolean;
  /** Called after each tensor with bytes done and total. */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
  /** Extra key-values recorded in the export's `abliterate.json`. */
  provenance?: Record<string, unknown>;
}

export interface ExportResult {
  outDir: string;
  edited: string[];
  copied: number;
  untied: boolean;
  /** Bytes of the source checkpoint processed. */
  bytesWritten: number;
}

export class ExportError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ExportError";
  }
}

function isInside(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
}

async function isNonEmptyDir(path: string): Promise<boolean> {
  try {
    return (await readdir(path)).length > 0;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    if ((error as NodeJS.ErrnoException).code === "ENOTDIR") throw new ExportError(`${path}: exists and is not a folder`);
    throw error;
  }
}

/**
 * config.json with tie_word_embeddings set to false (also in text_config for a multimodal config), edited as
 * text so that everything else keeps its exact form: a number written 15.0 stays 15.0, which strict
 * loaders (Hugging Face transformers 5) require of float fields.
 */
export function untieConfig(text: string, textConfig: boolean): string {
  let out = text;
  for (const path of textConfig ? [["tie_word_embeddings"], ["text_config", "tie_word_embeddings"]] : [["tie_word_embeddings"]]) {
    out = applyEdits(out, modify(out, path, false, { formattingOptions: { insertSpaces: true, tabSize: 2 } }));
  }
  return out;
}

/** Snapshot of the source's files, to detect a source that changes during the export. */
async function fingerprint(dir: string, files: string[]): Promise<string> {
  const parts: string[] = [];
  for (const f of files) {
    const s = await stat(join(dir, f));
    parts.push(`${f}:${s.size}:${s.mtimeMs}`);
  }
  return parts.join("|");
}

/**
 * Orthogonalise a checkpoint (a folder, or one already opened, which is left open) against the unit
 * direction and write it to `outDir`.
 */
export async function exportAbliterated(from: string | Checkpoint, outDir: string, unit: UnitVector, options: ExportOptions = {}): Promise<ExportResult> {
  const source = resolve(typeof from === "string" ? from : from.dir);
  const out = resolve(outDir);
  if (isInside(out, source)) throw new ExportError(`output folder ${out} is ${out === source ? "the source folder" : "inside the source folder " + source}; choose a folder outside it, the source is never written to`);
  if (isInside(source, out)) throw new ExportError(`output folder ${out} contains the source folder ${source}; choose another`);
  if (!options.force && (await isNonEmptyDir(out))) throw new ExportError(`output folder ${out} is not empty; pass force to replace it`);

  const checkpoint = typeof from === "string" ? await openCheckpoint(source) : from;
  const { config, arch, weights } = checkpoint;
  const tied = tiedEmbeddings(config);
  const keys = roleKeys(arch);
  const tmp = join(dirname(out), `.${basename(out)}.partial-${process.pid}-${Date.now()}`);
  const edited: string[] = [];
  let copied = 0;
  let bytesWritten = 0;
  try {
    checkWidth(unit, config.hidden_size);
    checkOrthogonalizeOptions(options, config.num_hidden_layers);
    const before = await fingerprint(source, weights.files);
    await mkdir(tmp, { recursive: true });
    const totalBytes = weights.files.reduce((sum, f) => sum + weights.namesIn(f).reduce((s, n) => s + (weights.info(n).end - weights.info(n).begin), 0), 0);
    // Sandwich-norm models: o_proj and down_proj are edited against directions their post-norms shape.
    const postNorms = new Map<string, Float32Array>();
    if (arch.sandwichNorms && !options.naive) for (const n of weights.names) if (/post_(attention|feedforward)_layernorm\.weight$/.test(n)) postNorms.set(n, await weights.readFloat32(n));
    const postNorm = (key: string) => {
      const w = postNorms.get(key);
      if (!w) throw new ExportError(`${source}: missing tensor ${key}`);
      return w;
    };
    const weightMap: Record<string, string> = {};
    for (const file of weights.files) {
      const tensors: TensorToWrite[] = [];
      for (const name of weights.namesIn(file)) {
        if (tied && name === keys.unembedding) continue; // a tied checkpoint's stored copy is replaced below
        const info = weights.info(name);
        const kind = residualWriterKind(name, arch, config.num_hidden_layers, options);
        const size = info.end - info.begin;
        if (kind && !isFloatDtype(info.dtype)) throw new ExportError(`${join(source, file)}: ${name} has dtype ${info.dtype}, which cannot be orthogonalised`);
        const dtype = info.dtype as FloatDtype;
        // Unedited tensors are copied byte for byte; edited ones stream through the orthogonalisation.
        const produce = kind
          ? () => orthogonalizeStream(kind, dtype, info.shape, writerDirection(name, arch, unit, postNorm, options), options.scale ?? 1, async (start, end) => {
              const raw = await weights.readRange(name, start, end);
              options.onProgress?.((bytesWritten += raw.length / (kind === "weight" ? 2 : 1)), totalBytes);
              return raw;
            })
          : async function* () {
              for (let start = 0; start < size; start += STREAM_CHUNK_BYTES) {
                const raw = await weights.readRange(name, start, Math.min(size, start + STREAM_CHUNK_BYTES));
                options.onProgress?.((bytesWritten += raw.length), totalBytes);
                yield raw;
              }
            };
        tensors.push({ name, dtype: info.dtype, shape: info.shape, bytes: produce });
        if (kind) edited.push(name);
        else copied++;
        weightMap[name] = file;
        if (tied && name === keys.embedding) {
          // Untie: the unembedding keeps the original embedding, so the edited model's logits equal the hooks'.
          const size = info.end - info.begin;
          tensors.push({
            name: keys.unembedding, dtype: info.dtype, shape: info.shape,
            bytes: async function* () {
              for (let start = 0; start < size; start += STREAM_CHUNK_BYTES) yield weights.readRange(name, start, Math.min(size, start + STREAM_CHUNK_BYTES));
            },
          });
          weightMap[keys.unembedding] = file;
        }
      }
      await writeSafetensors(join(tmp, file), tensors, weights.shardMetadata(file));
    }
    if (weights.files.length > 1 || (await exists(join(source, INDEX_FILE)))) {
      const index = JSON.parse(await readFile(join(source, INDEX_FILE), "utf8"));
      let total = 0;
      for (const file of weights.files) for (const n of weights.namesIn(file)) total += weights.info(n).end - weights.info(n).begin;
      if (tied && !weights.has(keys.unembedding)) total += weights.info(keys.embedding).end - weights.info(keys.embedding).begin;
      index.metadata = { ...(index.metadata ?? {}), total_size: total };
      index.weight_map = Object.fromEntries(Object.entries(weightMap).sort(([a], [b]) => a.localeCompare(b)));
      await writeFile(join(tmp, INDEX_FILE), JSON.stringify(index, null, 2) + "\n");
    }
    // Every other file of the folder (config, tokenizer, generation config, licence...) is copied.
    for (const entry of await readdir(source, { withFileTypes: true })) {
      if (!entry.isFile() || entry.name.endsWith(".safetensors") || entry.name === INDEX_FILE) continue;
      if (entry.name === "config.json" && tied) {
        await writeFile(join(tmp, "config.json"), untieConfig(await readFile(join(source, "config.json"), "utf8"), arch.textConfig ?? false));
      } else await copyFile(join(source, entry.name), join(tmp, entry.name));
    }
    await writeFile(join(tmp, "abliterate.json"), JSON.stringify({ source, edited, scale: options.scale ?? 1, layers: options.layers ?? null, skipEmbedding: options.skipEmbedding ?? false, postNorms: arch.sandwichNorms ? (options.naive ? "ignored (naive edit)" : "o_proj and down_proj edited against (1 + w_post) * r") : null, untied: tied, ...options.provenance }, null, 2) + "\n");
    if ((await fingerprint(source, weights.files)) !== before) throw new ExportError(`the source checkpoint ${source} changed during the export; nothing was written to ${out}`);
    if (await isNonEmptyDir(out)) {
      const old = `${tmp}.old`;
      await rename(out, old);
      await rename(tmp, out);
      await rm(old, { recursive: true, force: true });
    } else {
      await rm(out, { recursive: true, force: true }); // an empty folder
      await rename(tmp, out);
    }
  } catch (error) {
    await rm(tmp, { recursive: true, force: true });
    throw error;
  } finally {
    if (typeof from === "string") await checkpoint.close();
  }
  return { outDir: out, edited, copied, untied: tied, bytesWritten };
}
