// Stage 6's check of an export, on a few prompts: its next-token logits and greedy answers against a
// reference computed from the source, and what it writes to the residual stream along the direction.
// The reference is the source under the ablation hooks where weight orthogonalisation and the hooks are
// the same intervention (a full edit of a pre-norm model); otherwise (sandwich norms, where the post-norm
// sees a different input; partial edits) it is the source orthogonalised in memory with the same options.
import type * as tf from "@tensorflow/tfjs-core";
import { actName } from "../hooks.ts";
import type { HookedModel } from "../hooked-model.ts";
import type { FwdHook } from "../hooks.ts";
import { directionAblationHooks, withHooks } from "../interventions.ts";
import { checkWidth, dot, type UnitVector } from "../projection.ts";
import { promptBatches, type Prompts } from "../batches.ts";
import { generateAnswers, generateCompletions, lastPositionLogits } from "../generation.ts";
import { decodeToFloat32, encodeFromFloat32 } from "../safetensors/dtype.ts";
import { orthogonalizeModel, planModelEdit, replaceHeld, type OrthogonalizeOptions, type TensorEdit } from "../pipeline/orthogonalize.ts";
import type { NativeMatrix } from "../blas/native-matrix.ts";
import { orthogonalizeStream, STREAM_CHUNK_BYTES } from "./stream.ts";

/** Largest |logit difference| accepted between an export and its reference (float32 arithmetic). */
export const VERIFY_TOLERANCE = 1e-3;
/**
 * Largest |r . w| / |w| accepted in what a fully orthogonalised model writes to the residual stream: float32
 * arithmetic leaves about 1e-7; an export in BF16 or F16 adds the rounding of its edited weights, at most a
 * relative 2^-8 (BF16) or 2^-11 (F16) per element.
 */
export const WRITE_COMPONENT_TOLERANCE: Record<string, number> = { F32: 1e-4, BF16: 2 ** -8, F16: 2 ** -11 };

export interface Verification {
  /** What the export was compared with. */
  reference: "ablation hooks" | "in-memory orthogonalisation" | `in-memory orthogonalisation, rounded to ${string}`;
  prompts: number;
  /** Largest |logit difference| at the last position over the prompts. */
  maxAbsLogitDiff: number;
  /** Whether the export's greedy answers equal the reference's. */
  sameGreedyAnswers: boolean;
  /** Full edits only: the largest |r . w| / |w| over every residual write of the export (should be ~1e-7). */
  writeComponent?: number;
  tolerance: number;
  passed: boolean;
}

/** Largest |a - b| over rows of equal length. */
export function maxAbsDifference(a: readonly ArrayLike<number>[], b: readonly ArrayLike<number>[]): number {
  if (a.length !== b.length) throw new Error(`maxAbsDifference: ${a.length} rows against ${b.length}`);
  let max = 0;
  a.forEach((row, i) => {
    if (row.length !== b[i].length) throw new Error(`maxAbsDifference: row ${i} has ${row.length} values against ${b[i].length}`);
    for (let j = 0; j < row.length; j++) {
      const d = Math.abs(row[j] - b[i][j]);
      if (!(d <= max)) max = Number.isNaN(d) ? Infinity : d;
    }
  });
  return max;
}

/** What the export of a source model should compute on some prompts: the reference of `compareExport`. */
export interface ExportExpectation {
  reference: Verification["reference"];
  prompts: Prompts;
  unit: UnitVector;
  logits: Float32Array[];
  answers: string[];
  /** The answers' token ids (the stop token excluded). */
  answerTokens: number[][];
  /** A full edit: nothing the export writes may point along the direction (within this tolerance). */
  checkWrites: boolean;
  writeTolerance: number;
}

export interface VerifyOptions {
  maxNewTokens?: number;
  batchSize?: number;
  /** The options the export was made with (a partial edit is compared with the same edit in memory). */
  orthogonalize?: OrthogonalizeOptions;
  /** Orthogonalise the source itself where that is the reference, instead of a copy: saves a copy of the weights, spends the source. */
  inPlace?: boolean;
}

/**
 * The source's side of the check: under the ablation hooks where weight orthogonalisation and the hooks are
 * the same intervention (a full edit of a pre-norm model), otherwise orthogonalised in memory with the same options.
 */
export async function expectedExport(
  source: HookedModel,
  unit: UnitVector,
  prompts: Prompts,
  options: VerifyOptions = {},
): Promise<ExportExpectation> {
  if (prompts.length === 0) throw new Error("verifyExport: no prompts");
  const batchSize = options.batchSize ?? 8;
  const maxNewTokens = options.maxNewTokens ?? 16;
  const edit = options.orthogonalize ?? {};
  const plan = planModelEdit(source, unit, edit);
  const full = plan.full;
  const checkWrites = full && !plan.naive;
  // The export keeps each edited weight's dtype: a 16-bit checkpoint's edit is rounded, which the hooks are not.
  const writers = Object.keys(source.storedDtypes).filter((k) => plan.edits.has(k));
  const rounded = [...new Set(writers.map((k) => source.storedDtypes[k]))].filter((d) => d !== "F32");
  const writeTolerance = Math.max(...[...rounded, "F32"].map((d) => WRITE_COMPONENT_TOLERANCE[d] ?? WRITE_COMPONENT_TOLERANCE.BF16));
  if (full && !source.arch.sandwichNorms && rounded.length === 0) {
    return withHooks(directionAblationHooks(source, unit), async (fwdHooks) => ({
      reference: "ablation hooks" as const,
      prompts,
      unit,
      checkWrites,
      writeTolerance,
      logits: lastPositionLogits(source, prompts, { fwdHooks, batchSize }),
      ...(await greedyAnswers(source, prompts, { fwdHooks, maxNewTokens, batchSize })),
    }));
  }
  const edited = options.inPlace ? source : source.clone();
  try {
    // Matrices held in their stored 16 bits are edited in them, as the export streams them (the same bytes),
    // without a float32 copy (an 8B model's edited matrices would take 6 GB more); the rest in float32, then
    // rounded to their stored dtype as the export writes them.
    const native = edited.params.native ?? {};
    const inDtype = new Set([...plan.edits].filter(([key, e]) => native[key]?.halfValues && e.kind && !e.delta).map(([key]) => key));
    const changed = orthogonalizeModel(edited, unit, edit, { leave: inDtype });
    for (const key of inDtype) await orthogonalizeHalfInPlace(native[key], plan.edits.get(key)!);
    for (const key of changed) {
      const dtype = source.storedDtypes[key];
      if ((dtype === "BF16" || dtype === "F16") && !inDtype.has(key))
        replaceHeld(edited, key, (values) => decodeToFloat32(encodeFromFloat32(values, dtype), dtype));
    }
    const reference =
      rounded.length > 0
        ? (`in-memory orthogonalisation, rounded to ${rounded.join(" and ")}` as const)
        : ("in-memory orthogonalisation" as const);
    return {
      reference,
      prompts,
      unit,
      checkWrites,
      writeTolerance,
      logits: lastPositionLogits(edited, prompts, { batchSize }),
      ...(await greedyAnswers(edited, prompts, { maxNewTokens, batchSize })),
    };
  } finally {
    if (!options.inPlace) edited.dispose();
  }
}

/**
 * Edit a matrix held in its stored 16 bits where it is, through the export's streamed edit: the same bytes
 * the export writes, a few MB of float32 at a time.
 */
export async function orthogonalizeHalfInPlace(matrix: NativeMatrix, edit: TensorEdit): Promise<void> {
  const { dtype, words } = matrix.halfValues!;
  const bytes = new Uint8Array(words.buffer, words.byteOffset, words.byteLength);
  // Pieces come in row order, each after the rows it replaces were read (a later piece's rows are read
  // ahead, never an earlier one's), so they are written back in place.
  let at = 0;
  const pieces = orthogonalizeStream(
    edit.kind!,
    dtype,
    matrix.shape,
    edit.vector!,
    edit.scale,
    async (start, end) => bytes.subarray(start, end),
    STREAM_CHUNK_BYTES,
    {
      normPreserving: edit.normPreserving,
    },
  );
  for await (const piece of pieces) {
    bytes.set(piece, at);
    at += piece.length;
  }
  if (at !== bytes.length) throw new Error(`an in-place edit wrote ${at} of ${bytes.length} bytes`);
}

/** Greedy answers as text and as token ids. */
export async function greedyAnswers(
  model: HookedModel,
  prompts: Prompts,
  options: { fwdHooks?: readonly FwdHook[]; maxNewTokens: number; batchSize: number },
): Promise<{ answers: string[]; answerTokens: number[][] }> {
  const { texts, tokens } = await generateAnswers(model, prompts, options);
  return { answers: texts, answerTokens: tokens };
}

/** The export's side of the check, against an expectation computed from its source. */
export async function compareExport(
  exported: HookedModel,
  expected: ExportExpectation,
  options: { maxNewTokens?: number; batchSize?: number } = {},
): Promise<Verification> {
  const batchSize = options.batchSize ?? 8;
  const maxAbsLogitDiff = maxAbsDifference(expected.logits, lastPositionLogits(exported, expected.prompts, { batchSize }));
  const answers = await generateCompletions(exported, expected.prompts, { maxNewTokens: options.maxNewTokens ?? 16, batchSize });
  const sameGreedyAnswers = expected.answers.every((a, i) => a === answers[i]);
  const writeComponent = expected.checkWrites
    ? residualWriteComponent(exported, expected.unit, expected.prompts, { batchSize })
    : undefined;
  return {
    reference: expected.reference,
    prompts: expected.prompts.length,
    maxAbsLogitDiff,
    sameGreedyAnswers,
    writeComponent,
    tolerance: VERIFY_TOLERANCE,
    passed:
      maxAbsLogitDiff <= VERIFY_TOLERANCE &&
      sameGreedyAnswers &&
      (writeComponent === undefined || writeComponent <= expected.writeTolerance),
  };
}

/** Both sides at once, for two models in memory (stage 6's check). */
export async function verifyExport(
  source: HookedModel,
  exported: HookedModel,
  unit: UnitVector,
  prompts: Prompts,
  options: Omit<VerifyOptions, "inPlace"> = {},
): Promise<Verification> {
  return compareExport(exported, await expectedExport(source, unit, prompts, options), options);
}

/** |r . w| / |w|: how much of one residual write `w` points along the unit vector r (0 for a zero write). */
export function shareAlong(w: ArrayLike<number>, unit: ArrayLike<number>): number {
  const norm = Math.sqrt(dot(w, w));
  return norm > 0 ? Math.abs(dot(w, unit)) / norm : 0;
}

/**
 * The largest |r . w| / |w| over everything the model writes to the residual stream (the embedding,
 * every layer's hook_attn_out and hook_mlp_out) at every real token of the prompts: zero, up to float32
 * rounding, once the weights are orthogonalised against r.
 */
export function residualWriteComponent(
  model: HookedModel,
  unit: UnitVector,
  prompts: Prompts,
  options: { batchSize?: number } = {},
): number {
  checkWidth(unit, model.dModel);
  const names = [
    actName("embed"),
    ...Array.from({ length: model.nLayers }, (_, l) => [actName("attn_out", l), actName("mlp_out", l)]).flat(),
  ];
  let max = 0;
  for (const { batch } of promptBatches(model, prompts, options.batchSize)) {
    const pos = batch.inputIds[0].length;
    // Each write is read as the forward pass reaches it and then let go, so the check holds one layer's
    // activations at a time, as the forward pass itself does (not every layer's at once).
    const measure = (activation: tf.Tensor) => {
      const values = activation.dataSync(); // [batch, pos, d_model]
      for (let b = 0; b < batch.inputIds.length; b++) {
        for (let t = 0; t < pos; t++) {
          if (!batch.attentionMask[b][t]) continue;
          max = Math.max(max, shareAlong(values.subarray((b * pos + t) * model.dModel, (b * pos + t + 1) * model.dModel), unit));
        }
      }
    };
    model.runWithHooks(batch, { fwdHooks: [[names, measure]], logits: "last" }).dispose();
  }
  return max;
}
