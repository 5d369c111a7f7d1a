// Stage 6: write an abliterated Hugging Face checkpoint. The source is read one tensor at a
// time: tensors that are not edited are copied byte for byte, edited ones are orthogonalised and
// written back in their source dtype, in the source's shard layout. The export is written to a
// temporary folder beside the output, checked to load, and renamed into place only then, so an interrupted
// or broken export leaves nothing that looks complete. The source folder is never written to, and no folder
// that is, contains or lies inside it is ever replaced (paths compared once every link is followed).
import { copyFile, mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { dirname, join, sep } from "node:path";
import { applyEdits, modify } from "jsonc-parser";
import { INDEX_FILE } from "../checkpoint.ts";
import { exists } from "../files.ts";
import { checkCheckpointTensors, openCheckpoint, type Checkpoint } from "../load.ts";
import { ChatTokenizer } from "../tokenizer.ts";
import { roleKeys } from "../models/tensors.ts";
import type { UnitVector } from "../projection.ts";
import { writeSafetensors, type TensorToWrite } from "../safetensors/write.ts";
import { planCheckpointEdit, type EditPlan, type OrthogonalizeOptions } from "../pipeline/orthogonalize.ts";
import { editedTensorBytes, STREAM_CHUNK_BYTES } from "./stream.ts";
import { ExportError, writeExportFolder } from "./targets.ts";

export { ExportError } from "./targets.ts";

export interface ExportOptions extends OrthogonalizeOptions {
  /** Replace a non-empty output folder. */
  force?: boolean;
  /** Called after each tensor with bytes done and total. */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
  /** Told of what the export did besides writing (stale partial folders removed). */
  onNotice?: (line: string) => void;
  /** Extra key-values recorded in the export's `abliterate.json`. */
  provenance?: Record<string, unknown>;
  /**
   * Added to these tensors (by checkpoint key, row-major in the stored layout), after any orthogonalisation:
   * merged LoRA adapters. The result is written in the tensor's source dtype.
   */
  deltas?: ReadonlyMap<string, Float32Array>;
}

export interface ExportResult {
  outDir: string;
  edited: string[];
  copied: number;
  untied: boolean;
  /** Bytes of the source checkpoint processed. */
  bytesWritten: number;
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

/** Files that hold weights in another format: a loader could pick them up instead of the edited ones. */
const OTHER_WEIGHTS = /\.(bin|pt|pth|ckpt|gguf|h5|msgpack|onnx|safetensors)$/;

/**
 * Orthogonalise a checkpoint (a folder, or one already opened, which is left open) against the unit
 * direction (none: no orthogonalisation, e.g. only `deltas` merged) and write it to `outDir`.
 */
export async function exportAbliterated(
  from: string | Checkpoint,
  outDir: string,
  unit: UnitVector | undefined,
  options: ExportOptions = {},
): Promise<ExportResult> {
  const sourceDir = typeof from === "string" ? from : from.dir;
  return writeExportFolder(sourceDir, outDir, { ...options, what: "export" }, async ({ source, out, tmp }) => {
    const checkpoint = typeof from === "string" ? await openCheckpoint(source) : from;
    try {
      const plan = await planCheckpointEdit(checkpoint, unit, options, options.deltas);
      checkCheckpointTensors(checkpoint);
      const earlier = await earlierRecord(source);
      const before = await fingerprint(source, checkpoint.weights.files);
      await mkdir(tmp, { recursive: true });
      const { copied, bytesWritten } = await writeShards(checkpoint, plan, tmp, options.onProgress);
      await writeIndex(checkpoint, plan, source, tmp);
      await copyOtherFiles(checkpoint, plan, source, tmp);
      await writeRecord(plan, source, earlier, tmp, options.provenance);
      if ((await fingerprint(source, checkpoint.weights.files)) !== before)
        throw new ExportError(`the source checkpoint ${source} changed during the export; nothing was written to ${out}`);
      await checkLoadable(tmp, source, out);
      return { outDir: out, edited: [...plan.edits.keys()], copied, untied: plan.untie, bytesWritten };
    } finally {
      if (typeof from === "string") await checkpoint.close();
    }
  });
}

/**
 * Every shard of the source written to `dir` in its layout: unedited tensors copied as byte ranges of the
 * source files (in the kernel where it can), edited ones streamed through the plan's edit, and a tied
 * checkpoint's unembedding written as a copy of the original embedding (untied: the edited model's logits
 * are then the hooks').
 */
async function writeShards(
  checkpoint: Checkpoint,
  plan: EditPlan,
  dir: string,
  onProgress?: (doneBytes: number, totalBytes: number) => void,
): Promise<{ copied: number; bytesWritten: number }> {
  const { weights } = checkpoint;
  const keys = roleKeys(checkpoint.arch);
  const size = (name: string) => weights.info(name).end - weights.info(name).begin;
  const totalBytes = weights.files.reduce((sum, f) => sum + weights.namesIn(f).reduce((s, n) => s + size(n), 0), 0);
  let copied = 0;
  let bytesWritten = 0;
  onProgress?.(0, totalBytes);
  const copyOf = (name: string, progress: boolean) =>
    async function* () {
      for (let start = 0; start < size(name); start += STREAM_CHUNK_BYTES) {
        const end = Math.min(size(name), start + STREAM_CHUNK_BYTES);
        yield weights.fileRange(name, start, end);
        if (progress) onProgress?.((bytesWritten += end - start), totalBytes);
      }
    };
  // Every shard's tensors are planned, then written.
  const shards: { file: string; tensors: TensorToWrite[] }[] = [];
  for (const file of weights.files) {
    const tensors: TensorToWrite[] = [];
    shards.push({ file, tensors });
    for (const name of weights.namesIn(file)) {
      if (plan.untie && name === keys.unembedding) continue; // a tied checkpoint's stored copy is replaced below
      const info = weights.info(name);
      const edit = plan.edits.get(name);
      const read = (start: number, end: number, into?: Uint8Array) => weights.readRange(name, start, end, into);
      const count = (bytes: number) => onProgress?.((bytesWritten += bytes), totalBytes);
      tensors.push({
        name,
        dtype: info.dtype,
        shape: info.shape,
        bytes: edit ? editedTensorBytes(edit, info, read, count) : copyOf(name, true),
      });
      if (!edit) copied++;
      if (plan.untie && name === keys.embedding) {
        tensors.push({ name: keys.unembedding, dtype: info.dtype, shape: info.shape, bytes: copyOf(name, false) });
      }
    }
  }
  for (const { file, tensors } of shards) {
    await mkdir(dirname(join(dir, file)), { recursive: true }); // an index may keep its shards in a subfolder
    await writeSafetensors(join(dir, file), tensors, weights.shardMetadata(file));
  }
  return { copied, bytesWritten };
}

/** The shard index (for a sharded source, or one that has an index): the weight map and total size of what was written. */
async function writeIndex(checkpoint: Checkpoint, plan: EditPlan, source: string, dir: string): Promise<void> {
  const { weights } = checkpoint;
  if (weights.files.length === 1 && !(await exists(join(source, INDEX_FILE)))) return;
  const keys = roleKeys(checkpoint.arch);
  const index = JSON.parse(await readFile(join(source, INDEX_FILE), "utf8"));
  const weightMap: Record<string, string> = {};
  let total = 0;
  for (const file of weights.files) {
    for (const n of weights.namesIn(file)) {
      total += weights.info(n).end - weights.info(n).begin;
      if (!(plan.untie && n === keys.unembedding)) weightMap[n] = file;
      if (plan.untie && n === keys.embedding) weightMap[keys.unembedding] = file;
    }
  }
  if (plan.untie && !weights.has(keys.unembedding)) total += weights.info(keys.embedding).end - weights.info(keys.embedding).begin;
  // Whatever the source's index held as metadata, the export's is an object with the size it holds.
  const earlier = typeof index.metadata === "object" && index.metadata !== null && !Array.isArray(index.metadata) ? index.metadata : {};
  index.metadata = { ...earlier, total_size: total };
  index.weight_map = Object.fromEntries(Object.entries(weightMap).sort(([a], [b]) => a.localeCompare(b)));
  await writeFile(join(dir, INDEX_FILE), JSON.stringify(index, null, 2) + "\n");
}

/**
 * Every other file of the source folder (config, tokenizer, generation config, licence...) copied, its content
 * where it is a link (a Hub snapshot links to blobs); weights in other formats left out; an untied config.
 */
async function copyOtherFiles(checkpoint: Checkpoint, plan: EditPlan, source: string, dir: string): Promise<void> {
  // Names as bytes: a name that is not UTF-8 is copied under the same bytes, not a decoded look-alike.
  const inFolder = (folder: string, name: Buffer) => Buffer.concat([Buffer.from(folder.endsWith(sep) ? folder : folder + sep), name]);
  for (const name of await readdir(source, { encoding: "buffer" })) {
    const text = name.toString("utf8");
    if (text === INDEX_FILE || OTHER_WEIGHTS.test(text) || text.startsWith(".")) continue;
    const path = inFolder(source, name);
    if (!(await stat(path)).isFile()) continue;
    if (text === "config.json" && plan.untie) {
      await writeFile(join(dir, "config.json"), untieConfig(await readFile(path, "utf8"), checkpoint.arch.textConfig ?? false));
    } else await copyFile(path, inFolder(dir, name));
  }
}

/**
 * The source's own abliterate.json (an export of an export keeps it), or undefined; read before any work, and
 * refused naming the file when it is not JSON.
 */
export async function earlierRecord(source: string): Promise<unknown> {
  const path = join(source, "abliterate.json");
  if (!(await exists(path))) return undefined;
  const text = await readFile(path, "utf8");
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ExportError(
      `${path}: not valid JSON (${(error as Error).message}); the export keeps the source's record of its own edit, so fix or ` +
        `remove this file`,
    );
  }
}

/** abliterate.json: the source, the plan's record and the caller's provenance; an export of an export keeps the earlier record. */
async function writeRecord(
  plan: EditPlan,
  source: string,
  earlier: unknown,
  dir: string,
  provenance?: Record<string, unknown>,
): Promise<void> {
  const { edited, ...record } = plan.record;
  const abliterate = { source, ...(earlier !== undefined ? { earlier } : {}), edited, ...record, ...provenance };
  await writeFile(join(dir, "abliterate.json"), JSON.stringify(abliterate, null, 2) + "\n");
}

/** The export must load as a checkpoint does: its config, its tensors, and its tokenizer when the source had one. */
async function checkLoadable(tmp: string, source: string, out: string): Promise<void> {
  try {
    const written = await openCheckpoint(tmp);
    try {
      checkCheckpointTensors(written);
    } finally {
      await written.close();
    }
    if ((await exists(join(source, "tokenizer.json"))) || (await exists(join(source, "tokenizer_config.json"))))
      await ChatTokenizer.load(tmp);
  } catch (error) {
    throw new ExportError(`the export would not load (${(error as Error).message.replaceAll(tmp, out)}); nothing was written to ${out}`);
  }
}
