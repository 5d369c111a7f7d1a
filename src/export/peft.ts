// The plain edit as a LoRA adapter (the form heretic stores): for a writer W [d_model, in] edited with strength
// lambda against the unit vector v (r, biprojected or post-norm-scaled per layer as the plan says),
//   W' = W - lambda v (v^T W) = W + B A,   B = -lambda v [d_model, 1],   A = v^T W [1, in],
// a rank-1 update, written as a PEFT adapter folder (adapter_config.json with r 1 and lora_alpha 1, so PEFT's
// scaling alpha / r is 1; adapter_model.safetensors under PEFT's key names). The token embedding E [vocab, d_model]
// is a LoRA on an embedding layer: PEFT adds (B A)^T with A = (E v)^T [1, vocab] and B = -lambda v [d_model, 1].
// The norm-preserving edit is not low-rank: it rescales every column by a factor of its own, a full-rank change,
// so it has no LoRA form and is refused; so are bias edits (a LoRA changes weights only).
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { openCheckpoint, type Checkpoint } from "../load.ts";
import type { UnitVector } from "../projection.ts";
import { decodeToFloat32, type FloatDtype } from "../safetensors/dtype.ts";
import { floatTensor, writeSafetensors, type TensorToWrite } from "../safetensors/write.ts";
import { planCheckpointEdit, type OrthogonalizeOptions } from "../pipeline/orthogonalize.ts";
import { earlierRecord } from "./safetensors.ts";
import { STREAM_CHUNK_BYTES } from "./stream.ts";
import { ExportError, writeExportFolder } from "./targets.ts";

/** Why the norm-preserving edit is refused in LoRA form. */
export const NORM_PRESERVING_HAS_NO_LORA =
  "the norm-preserving edit has no LoRA form: it rescales every column of o_proj and down_proj (and every embedding row) by a " +
  "factor of its own, a full-rank change; export it as a checkpoint (--format safetensors or gguf)";

export interface PeftExportOptions extends OrthogonalizeOptions {
  force?: boolean;
  provenance?: Record<string, unknown>;
  onProgress?: (done: number, total: number) => void;
}

export interface PeftExportResult {
  outDir: string;
  /** The modules the adapter targets (checkpoint names without `.weight`). */
  modules: string[];
  /**
   * The source ties its head to the embedding, which the adapter edits: merged as it is (PEFT's
   * `merge_and_unload`), the edit would reach the head too; the adapter's README.md says how to untie first.
   */
  untieBeforeMerging: boolean;
}

/** Write the plan's edit of `from` against `unit` as a rank-1 PEFT LoRA adapter in `outDir`. */
export async function exportPeftAdapter(
  from: string | Checkpoint,
  outDir: string,
  unit: UnitVector,
  options: PeftExportOptions = {},
): Promise<PeftExportResult> {
  if (options.normPreserving) throw new ExportError(NORM_PRESERVING_HAS_NO_LORA);
  const sourceDir = typeof from === "string" ? from : from.dir;
  return writeExportFolder(sourceDir, outDir, { force: options.force, what: "adapter" }, async ({ source, out, tmp }) => {
    const checkpoint = typeof from === "string" ? await openCheckpoint(source) : from;
    try {
      return { outDir: out, ...(await writeAdapter(checkpoint, source, unit, options, tmp)) };
    } finally {
      if (typeof from === "string") await checkpoint.close();
    }
  });
}

/**
 * The module a checkpoint tensor belongs to, as PEFT names it on the loaded model: the key without `.weight`;
 * for a multimodal checkpoint that keeps its language model under a prefix (Gemma 3: `language_model.model.X`),
 * the name transformers 5 gives the loaded module (`model.language_model.X`).
 */
function moduleName(key: string, keyPrefix: string): string {
  const bare = key.replace(/\.weight$/, "");
  if (!keyPrefix) return bare;
  return `model.${keyPrefix.replace(/\.$/, "")}.${bare.slice(keyPrefix.length).replace(/^model\./, "")}`;
}

async function writeAdapter(
  checkpoint: Checkpoint,
  source: string,
  unit: UnitVector,
  options: PeftExportOptions,
  dir: string,
): Promise<{ modules: string[]; untieBeforeMerging: boolean }> {
  const { arch, weights } = checkpoint;
  const plan = await planCheckpointEdit(checkpoint, unit, options);
  const earlier = await earlierRecord(source);
  const tensors: TensorToWrite[] = [];
  const modules: string[] = [];
  let done = 0;
  const bias = [...plan.edits].find(([, edit]) => edit.kind === "bias")?.[0];
  if (bias) throw new ExportError(`${source}: the edit changes the bias ${bias}, which a LoRA adapter cannot; export a checkpoint instead`);
  for (const [key, edit] of plan.edits) {
    const v = edit.vector!;
    const info = weights.info(key);
    const [rows, cols] = info.shape;
    const rowBytes = (info.end - info.begin) / rows;
    const perChunk = Math.max(1, Math.floor(STREAM_CHUNK_BYTES / rowBytes));
    // A = v^T W (a weight: d_model rows, accumulated over them) or E v (the embedding: one value per row), in float64.
    const a = new Float64Array(edit.kind === "weight" ? cols : rows);
    for (let first = 0; first < rows; first += perChunk) {
      const n = Math.min(perChunk, rows - first);
      const values = decodeToFloat32(await weights.readRange(key, first * rowBytes, (first + n) * rowBytes), info.dtype as FloatDtype);
      for (let i = 0; i < n; i++) {
        const o = i * cols;
        if (edit.kind === "weight") {
          const vi = v[first + i];
          for (let j = 0; j < cols; j++) a[j] += vi * values[o + j];
        } else {
          let c = 0;
          for (let j = 0; j < cols; j++) c += values[o + j] * v[j];
          a[first + i] = c;
        }
      }
    }
    const b = Float32Array.from(v, (x) => -edit.scale * x);
    const module = moduleName(key, arch.keyPrefix);
    modules.push(module);
    if (edit.kind === "embedding") {
      tensors.push(floatTensor(`base_model.model.${module}.lora_embedding_A`, Float32Array.from(a), [1, rows]));
      tensors.push(floatTensor(`base_model.model.${module}.lora_embedding_B`, b, [v.length, 1]));
    } else {
      tensors.push(floatTensor(`base_model.model.${module}.lora_A.weight`, Float32Array.from(a), [1, cols]));
      tensors.push(floatTensor(`base_model.model.${module}.lora_B.weight`, b, [v.length, 1]));
    }
    options.onProgress?.(++done, plan.edits.size);
  }
  await mkdir(dir, { recursive: true });
  await writeSafetensors(join(dir, "adapter_model.safetensors"), tensors, { format: "pt" });
  const config = {
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    base_model_name_or_path: source,
    r: 1,
    lora_alpha: 1,
    lora_dropout: 0,
    bias: "none",
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    use_rslora: false,
    use_dora: false,
    // Full module names: PEFT matches a target when a module's name ends with it, so exactly these are adapted.
    target_modules: modules,
    modules_to_save: null,
    layers_to_transform: null,
    layers_pattern: null,
    rank_pattern: {},
    alpha_pattern: {},
  };
  await writeFile(join(dir, "adapter_config.json"), JSON.stringify(config, null, 2) + "\n");
  const { edited, ...record } = plan.record;
  const abliterate = { source, ...(earlier !== undefined ? { earlier } : {}), form: "peft-lora", edited, ...record, ...options.provenance };
  await writeFile(join(dir, "abliterate.json"), JSON.stringify(abliterate, null, 2) + "\n");
  await writeFile(join(dir, "README.md"), adapterReadme(source, modules.length, plan.headDiffers));
  return { modules, untieBeforeMerging: plan.headDiffers };
}

/** What the CLI adds after "wrote <adapter>" when the head must be untied before merging. */
export const untieNote = (adapter: PeftExportResult) =>
  adapter.untieBeforeMerging
    ? `\n  the source ties its head to the embedding, which the adapter edits: before merging with PEFT, untie it as ` +
      `${join(adapter.outDir, "README.md")} shows (llama.cpp cannot apply this adapter: export a GGUF file instead)`
    : "";

/**
 * How to use the adapter, written beside it: with PEFT (as an adapter, or merged: a tied head is first given its
 * own copy of the original embedding, else merging would edit the head too and the model would not be the
 * baked export), and with llama.cpp (its LoRA converter, then --lora; not when the adapter edits a tied
 * embedding, whose LoRA llama.cpp also applies to the head, and fails). `untie`: the adapter edits the
 * embedding of a source that ties its head to it.
 */
export function adapterReadme(source: string, modules: number, untie: boolean): string {
  const python = (lines: string[]) => ["```python", ...lines, "```"];
  return [
    "# Abliteration as a rank-1 LoRA adapter",
    "",
    `The plain abliteration edit of \`${source}\` on ${modules} modules, written by abliterate: for each module`,
    "W' = W + B A with B = -lambda v and A = v^T W (the embedding: A = (E v)^T). `abliterate.json` records the edit. It",
    "applies to that checkpoint only.",
    "",
    "## With PEFT",
    "",
    ...python([
      "import torch",
      "from transformers import AutoModelForCausalLM",
      "from peft import PeftModel",
      "",
      `model = AutoModelForCausalLM.from_pretrained(${JSON.stringify(source)})`,
      ...(untie
        ? [
            "# The head shares the embedding's matrix, which the adapter edits: give the head its own copy of the",
            "# original first, or merging would change the head too.",
            "model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())",
            "model.config.tie_word_embeddings = False",
            "model.config.get_text_config().tie_word_embeddings = False",
          ]
        : []),
      'model = PeftModel.from_pretrained(model, "path/to/this/folder")',
      "merged = model.merge_and_unload()  # optional: the same model as abliterate's checkpoint export",
    ]),
    "",
    ...(untie
      ? [
          "The source ties its head to the embedding. Without the untying lines the adapter still works unmerged, but",
          "`merge_and_unload()` would also edit the head. Loading with `tie_word_embeddings=False` instead is not the",
          "same: a checkpoint that stores no head then gets a newly initialised one.",
          "",
        ]
      : []),
    "## With llama.cpp",
    "",
    ...(untie
      ? [
          "Not this adapter: llama.cpp applies a LoRA of the embedding to the head that shares its matrix as well, and",
          "stops (`GGML_ASSERT(ggml_can_mul_mat(a, b))`). Export the edited model itself instead",
          "(`abliterate apply --format gguf`), or write the adapter with `--skip-embedding` (a different edit: the",
          "embedding keeps its component along the direction), which llama.cpp applies as below.",
          "",
        ]
      : []),
    "```sh",
    `python convert_lora_to_gguf.py --base ${JSON.stringify(source)} --outfile adapter.gguf path/to/this/folder`,
    "llama-cli -m base-model.gguf --lora adapter.gguf",
    "```",
    "",
    "`convert_lora_to_gguf.py` is in llama.cpp's repository; `base-model.gguf` is the same source checkpoint converted",
    "to GGUF (`abliterate export-gguf`).",
    "",
  ].join("\n");
}
