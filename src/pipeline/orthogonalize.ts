// Stage 5: make the ablation permanent. Every matrix that writes to the residual stream is
// orthogonalised against the unit direction r, so nothing the model writes has a component along r:
//   token embedding E [vocab, d_model]:        E <- E - (E r) r^T        (row kernel)
//   o_proj, down_proj W [d_model, in] (HF):    W <- W - r (r^T W)        (column kernel; the engine holds
//                                                                        them transposed, [in, d_model]: row kernel)
//   their biases b [d_model]:                  b <- b - (b . r) r        (row kernel)
// With `scale` s < 1 only a fraction s of the component is removed. The kernels are in projection.ts; the
// in-memory edit and the streamed export run the same array kernels.
// Sandwich-norm models (Gemma 2/3) normalise o_proj's and down_proj's output before the residual add:
// postnorm(o) = o / rms(o) * (1 + w). Since rms only rescales, postnorm(o) is orthogonal to r exactly when
// o is orthogonal to u = normalize((1 + w) * r), so those matrices are edited against u, per layer; the
// naive edit (against r itself) stays available for comparison.
import * as tf from "@tensorflow/tfjs-core";
import type { HookedModel } from "../hooked-model.ts";
import type { Checkpoint } from "../load.ts";
import type { Architecture } from "../models/architecture.ts";
import { roleKeys } from "../models/tensors.ts";
import { layerKey } from "../models/architecture.ts";
import {
  accumulateColumnCoefficients,
  checkWidth,
  projectColumnsF32,
  projectColumnsNormPreserving,
  projectRowsArray,
  projectRowsNormPreserving,
  unitVector,
  type UnitVector,
} from "../projection.ts";
import { tiedEmbeddings, type ModelConfig } from "../config.ts";

export interface OrthogonalizeOptions {
  /** Layers whose o_proj and down_proj are edited, [first, last] inclusive (default: all). */
  layers?: readonly [number, number];
  /** Leave the token embedding as it is. */
  skipEmbedding?: boolean;
  /** Fraction of the component removed, between 0 and 1 (default 1). */
  scale?: number;
  /** Sandwich-norm models: edit o_proj and down_proj against r itself, ignoring the post-norm that follows them (for comparison only). */
  naive?: boolean;
  /**
   * Strength by layer, per component (heretic's parametrisation): the attention output (o_proj) and the MLP
   * output (down_proj) each take `kernelStrength` of their layer instead of `scale`; a layer the kernel gives 0 is
   * not edited. The embedding keeps `scale`.
   */
  kernels?: { attention?: StrengthKernel; mlp?: StrengthKernel };
  /**
   * Rescale every edited vector (embedding row, o_proj / down_proj column) to its original length (grimjim's
   * MPOA). Biases get the plain edit.
   */
  normPreserving?: boolean;
  /**
   * Biprojection (grimjim): the harmless mean activation at resid_pre of every layer, at the direction's token
   * offset ([n_layers][d_model]). Each layer's writers are edited against r_l = unit(r - (r.h_l) h_l), h_l the unit
   * harmless mean of that layer (the embedding: layer 0's), instead of r itself.
   */
  biprojectAgainst?: readonly ArrayLike<number>[];
}

/**
 * heretic's strength kernel for one component: full strength `maxWeight` at layer `maxWeightPosition`,
 * falling linearly to `minWeight` at `minWeightDistance` layers away, and 0 (the layer is not edited) beyond.
 */
export interface StrengthKernel {
  maxWeight: number;
  maxWeightPosition: number;
  minWeight: number;
  minWeightDistance: number;
}

/** lambda_l = maxWeight + (d / minWeightDistance)(minWeight - maxWeight) for d = |l - maxWeightPosition| <= minWeightDistance, else 0. */
export function kernelStrength(kernel: StrengthKernel, layer: number): number {
  const d = Math.abs(layer - kernel.maxWeightPosition);
  if (d > kernel.minWeightDistance) return 0;
  if (d === 0) return kernel.maxWeight;
  return kernel.maxWeight + (d / kernel.minWeightDistance) * (kernel.minWeight - kernel.maxWeight);
}

/** Which residual writer a checkpoint key is: the embedding, or a layer's attention or MLP output (weight or bias). */
export function writerSite(key: string, arch: Architecture): { layer: number; component: "attention" | "mlp" } | "embedding" | undefined {
  if (!key.startsWith(arch.keyPrefix)) return undefined;
  if (key === roleKeys(arch).embedding) return "embedding";
  const m = /^model\.layers\.(\d+)\.(self_attn\.o_proj|mlp\.down_proj)\.(weight|bias)$/.exec(key.slice(arch.keyPrefix.length));
  return m ? { layer: Number(m[1]), component: m[2] === "self_attn.o_proj" ? "attention" : "mlp" } : undefined;
}

/** The strength a writer is edited with: its component's kernel at its layer, else `scale`. */
export function writerStrength(key: string, arch: Architecture, options: OrthogonalizeOptions = {}): number {
  const site = writerSite(key, arch);
  const kernel = site && site !== "embedding" ? options.kernels?.[site.component] : undefined;
  return kernel && site !== "embedding" && site ? kernelStrength(kernel, site.layer) : (options.scale ?? 1);
}

/** r_l = unit(r - (r.h) h) for h = unit(harmless mean): the direction biprojected against one layer's harmless mean. */
export function projectAgainst(unit: UnitVector, mean: ArrayLike<number>, what: string): UnitVector {
  const h = unitVector(mean, what, unit.length);
  return unitVector(projectRowsArray(Float64Array.from(unit), h), `the direction projected against ${what}`);
}

/** Whether these options edit every residual writer fully (what the ablation hooks do). */
export const isFullEdit = (options: OrthogonalizeOptions, nLayers: number) =>
  !options.skipEmbedding &&
  !options.kernels?.attention &&
  !options.kernels?.mlp &&
  !options.normPreserving &&
  !options.biprojectAgainst &&
  (options.scale ?? 1) === 1 &&
  (!options.layers || (options.layers[0] === 0 && options.layers[1] === nLayers - 1));

/** How a tensor that writes to the residual stream is stored: rows of d_model, or a [d_model, in] matrix. */
export type WriterKind = "embedding" | "weight" | "bias";

/** Whether a checkpoint tensor writes to the residual stream and is to be edited, and how. */
export function residualWriterKind(
  key: string,
  arch: Architecture,
  nLayers: number,
  options: OrthogonalizeOptions = {},
): WriterKind | undefined {
  if (!key.startsWith(arch.keyPrefix)) return undefined;
  if (key === roleKeys(arch).embedding) return options.skipEmbedding ? undefined : "embedding";
  const m = /^model\.layers\.(\d+)\.(self_attn\.o_proj|mlp\.down_proj)\.(weight|bias)$/.exec(key.slice(arch.keyPrefix.length));
  if (!m) return undefined;
  const layer = Number(m[1]);
  const [first, last] = options.layers ?? [0, nLayers - 1];
  if (layer < first || layer > last) return undefined;
  const kernel = options.kernels?.[m[2] === "self_attn.o_proj" ? "attention" : "mlp"];
  if (kernel && kernelStrength(kernel, layer) === 0) return undefined;
  return m[3] === "weight" ? "weight" : "bias";
}

/**
 * The direction a residual writer is orthogonalised against: r, or on sandwich-norm models, for o_proj
 * and down_proj, normalize((normOffset + w_post) * r) with w_post that layer's post-norm weight, which
 * `postNorm(key)` reads (as stored, without the offset).
 */
export function writerDirection(
  key: string,
  arch: Architecture,
  unit: UnitVector,
  postNorm: (key: string) => ArrayLike<number>,
  options: OrthogonalizeOptions = {},
): UnitVector {
  const site = writerSite(key, arch);
  if (options.biprojectAgainst && site) {
    const layer = site === "embedding" ? 0 : site.layer;
    const means = options.biprojectAgainst;
    if (layer >= means.length)
      throw new Error(`biprojection: harmless means are given for ${means.length} layers, but ${key} is of layer ${layer}`);
    unit = projectAgainst(unit, means[layer], `the harmless mean at blocks.${layer}.hook_resid_pre`);
  }
  if (!arch.sandwichNorms || options.naive) return unit;
  const m = /^model\.layers\.(\d+)\.(self_attn\.o_proj|mlp\.down_proj)\./.exec(key.slice(arch.keyPrefix.length));
  if (!m) return unit;
  const normKey =
    arch.keyPrefix +
    layerKey(Number(m[1]), m[2] === "self_attn.o_proj" ? "post_attention_layernorm.weight" : "post_feedforward_layernorm.weight");
  const w = postNorm(normKey);
  if (w.length !== unit.length) throw new Error(`${normKey} has ${w.length} values, but d_model is ${unit.length}`);
  return unitVector(
    Float64Array.from(unit, (r, i) => (arch.normOffset + w[i]) * r),
    `the direction scaled by ${normKey}`,
  );
}

export function checkOrthogonalizeOptions(options: OrthogonalizeOptions, nLayers: number): void {
  const scale = options.scale ?? 1;
  if (!(scale >= 0 && scale <= 1)) throw new Error(`scale must be between 0 and 1, got ${scale}`);
  for (const [component, kernel] of Object.entries(options.kernels ?? {})) {
    if (!kernel) continue;
    const name = `the ${component} kernel`;
    for (const field of ["maxWeight", "minWeight", "minWeightDistance"] as const)
      if (!(Number.isFinite(kernel[field]) && kernel[field] >= 0))
        throw new Error(`${name}'s ${field} must be a finite number >= 0, got ${kernel[field]}`);
    if (!(Number.isFinite(kernel.maxWeightPosition) && kernel.maxWeightPosition >= 0 && kernel.maxWeightPosition <= nLayers - 1))
      throw new Error(`${name}'s maxWeightPosition must be a layer index in [0, ${nLayers - 1}], got ${kernel.maxWeightPosition}`);
  }
  if (options.biprojectAgainst && options.biprojectAgainst.length !== nLayers)
    throw new Error(
      `biprojection needs the harmless mean at resid_pre of each of the model's ${nLayers} layers, got ${options.biprojectAgainst.length}`,
    );
  if (options.layers) {
    const [first, last] = options.layers;
    if (!Number.isInteger(first) || !Number.isInteger(last) || first < 0 || last >= nLayers || first > last) {
      throw new Error(`layer range [${first}, ${last}] is not within [0, ${nLayers - 1}]`);
    }
  }
}

/**
 * Replace a held weight by `edit` of its values. The old tensor is freed before the new one is made, so the
 * backend never holds both: a 600 MB embedding is edited without 600 MB more of wasm heap.
 */
export function replaceHeld(model: HookedModel, key: string, edit: (values: Float32Array) => Float32Array): void {
  const native = model.params.native?.[key];
  if (native) {
    native.values = edit(native.values); // outside the heap: the new values simply take the old ones' place
    return;
  }
  const held: Record<string, tf.Tensor> = Object.hasOwn(model.params.transposed, key) ? model.params.transposed : model.params.stored;
  const old = held[key];
  if (!old) throw new Error(`missing weight ${key}`);
  const values = old.dataSync() as Float32Array;
  const shape = old.shape;
  old.dispose();
  held[key] = tf.tensor(edit(values), shape, "float32");
}

/** A held weight's values (float32, in the layout it is held in). */
export function heldValues(model: HookedModel, key: string): Float32Array {
  const native = model.params.native?.[key];
  if (native) return native.values;
  const held = model.params.transposed[key] ?? model.params.stored[key];
  if (!held) throw new Error(`missing weight ${key}`);
  return held.dataSync() as Float32Array;
}

/** One tensor's part of an edit plan. */
export interface TensorEdit {
  /** How it writes to the residual stream; absent when only a delta is added. */
  kind?: WriterKind;
  /** The unit vector it is orthogonalised against (r, or on sandwich-norm models its post-norm's u). */
  vector?: UnitVector;
  /** Fraction of the component removed (the strength lambda). */
  scale: number;
  /** Rescale each edited vector to its original length (weights and the embedding; never a bias). */
  normPreserving?: boolean;
  /** Added after the orthogonalisation (a merged LoRA adapter), row-major in the stored layout. */
  delta?: Float32Array;
}

/**
 * The whole edit of one checkpoint, decided once: which tensors change and how, and whether a tied
 * unembedding is untied (it keeps the original embedding, so the edited model's logits are the hooks').
 */
export interface EditPlan {
  /** The direction; none when only deltas are merged. */
  unit?: UnitVector;
  scale: number;
  layers?: readonly [number, number];
  skipEmbedding: boolean;
  naive: boolean;
  /** The tensors that change, in the checkpoint's order. */
  edits: ReadonlyMap<string, TensorEdit>;
  /** A tied checkpoint becomes untied: its unembedding is written (held) as a copy of the original embedding. */
  untie: boolean;
  /** The untied unembedding differs from the edited embedding (so a format that can tie must store both). */
  headDiffers: boolean;
  /** Every residual writer fully edited: the same intervention as the ablation hooks. */
  full: boolean;
  /** What the plan does, as recorded in an export's abliterate.json. */
  record: {
    edited: string[];
    scale: number;
    layers: readonly [number, number] | null;
    skipEmbedding: boolean;
    postNorms: string | null;
    untied: boolean;
    /** The strength kernels, and the strength each layer's component got (0: not edited); absent without kernels. */
    kernels?: { attention?: StrengthKernel; mlp?: StrengthKernel; strengths: { attention: number[]; mlp: number[] } };
    normPreserving: boolean;
    /** Each layer's writers edited against the direction projected against that layer's harmless mean at resid_pre. */
    biprojected: boolean;
  };
}

/** What a plan needs to know of a checkpoint or a loaded model. */
export interface EditTarget {
  /** Where it comes from, for errors. */
  source: string;
  arch: Architecture;
  config: ModelConfig;
  /** Every tensor key, in order. */
  keys: readonly string[];
  /** The shape of a tensor as stored (HF layout), to check deltas. */
  shape: (key: string) => readonly number[];
  /** A post-norm weight's values as stored (read only for sandwich-norm models). */
  postNorm: (key: string) => ArrayLike<number>;
}

/** The post-norm weights a plan reads (sandwich-norm models, not naive): read them before `planEdit`. */
export function postNormKeys(arch: Architecture, keys: readonly string[], options: OrthogonalizeOptions = {}): string[] {
  return arch.sandwichNorms && !options.naive ? keys.filter((n) => /post_(attention|feedforward)_layernorm\.weight$/.test(n)) : [];
}

/** Decide the edit of `target` against `unit` (none: deltas only) with these options and merged deltas. */
export function planEdit(
  target: EditTarget,
  unit: UnitVector | undefined,
  options: OrthogonalizeOptions = {},
  deltas?: ReadonlyMap<string, Float32Array>,
): EditPlan {
  const { arch, config } = target;
  const nLayers = config.num_hidden_layers;
  if (unit) checkWidth(unit, config.hidden_size);
  checkOrthogonalizeOptions(options, nLayers);
  const present = new Set(target.keys);
  for (const [key, delta] of deltas ?? []) {
    if (!present.has(key)) throw new Error(`${target.source}: no tensor ${key} to add a delta to`);
    const shape = target.shape(key);
    const count = shape.reduce((a, b) => a * b, 1);
    if (delta.length !== count) throw new Error(`${key}: a delta of ${delta.length} values for shape [${shape.join(", ")}] (${count})`);
  }
  const scale = options.scale ?? 1;
  const edits = new Map<string, TensorEdit>();
  for (const key of target.keys) {
    const kind = unit ? residualWriterKind(key, arch, nLayers, options) : undefined;
    const delta = deltas?.get(key);
    if (!kind && !delta) continue;
    edits.set(key, {
      kind,
      vector: kind ? writerDirection(key, arch, unit!, target.postNorm, options) : undefined,
      scale: kind ? writerStrength(key, arch, options) : scale,
      normPreserving: options.normPreserving && (kind === "weight" || kind === "embedding") ? true : undefined,
      delta,
    });
  }
  const kernels = options.kernels?.attention || options.kernels?.mlp ? options.kernels : undefined;
  const strengthsOf = (kernel: StrengthKernel | undefined) =>
    Array.from({ length: nLayers }, (_, l) => {
      const [first, last] = options.layers ?? [0, nLayers - 1];
      return l < first || l > last ? 0 : kernel ? kernelStrength(kernel, l) : scale;
    });
  const untie = tiedEmbeddings(config);
  const embedding = roleKeys(arch).embedding;
  return {
    unit,
    scale,
    layers: options.layers,
    skipEmbedding: options.skipEmbedding ?? false,
    naive: options.naive ?? false,
    edits,
    untie,
    headDiffers: untie && edits.get(embedding)?.kind !== undefined,
    full: unit !== undefined && isFullEdit(options, nLayers),
    record: {
      edited: [...edits.keys()],
      scale,
      layers: options.layers ?? null,
      skipEmbedding: options.skipEmbedding ?? false,
      postNorms: arch.sandwichNorms
        ? options.naive
          ? "ignored (naive edit)"
          : "o_proj and down_proj edited against (1 + w_post) * r"
        : null,
      untied: untie,
      ...(kernels
        ? { kernels: { ...kernels, strengths: { attention: strengthsOf(kernels.attention), mlp: strengthsOf(kernels.mlp) } } }
        : {}),
      normPreserving: options.normPreserving ?? false,
      biprojected: options.biprojectAgainst !== undefined,
    },
  };
}

/** The plan for a checkpoint on disk (post-norms read from it; keys in its files' order). */
export async function planCheckpointEdit(
  checkpoint: Checkpoint,
  unit: UnitVector | undefined,
  options: OrthogonalizeOptions = {},
  deltas?: ReadonlyMap<string, Float32Array>,
): Promise<EditPlan> {
  const { weights } = checkpoint;
  const keys = weights.files.flatMap((f) => weights.namesIn(f));
  const postNorms = new Map<string, Float32Array>();
  if (unit) for (const key of postNormKeys(checkpoint.arch, keys, options)) postNorms.set(key, await weights.readFloat32(key));
  const postNorm = (key: string) => {
    const w = postNorms.get(key);
    if (!w) throw new Error(`${checkpoint.dir}: missing tensor ${key}`);
    return w;
  };
  return planEdit(
    { source: checkpoint.dir, arch: checkpoint.arch, config: checkpoint.config, keys, shape: (key) => weights.info(key).shape, postNorm },
    unit,
    options,
    deltas,
  );
}

/** The plan for a loaded model (its weights as held, post-norms read from the held tensors). */
export function planModelEdit(model: HookedModel, unit: UnitVector, options: OrthogonalizeOptions = {}): EditPlan {
  checkWidth(unit, model.dModel);
  const { stored, transposed } = model.params;
  const native = model.params.native ?? {};
  return planEdit(
    {
      source: model.dir,
      arch: model.arch,
      config: model.config,
      keys: [...Object.keys(stored), ...Object.keys(transposed), ...Object.keys(native)],
      shape: (key) => (stored[key] ?? native[key])?.shape ?? [...transposed[key].shape].reverse(),
      postNorm: (key) => {
        if (!stored[key]) throw new Error(`missing weight ${key}`);
        return stored[key].dataSync();
      },
    },
    unit,
    options,
  );
}

/**
 * Orthogonalise a loaded model's weights in place, following `planModelEdit`, and return the keys edited.
 * A tied model is untied first: its unembedding keeps the original embedding, as the exported checkpoint
 * will. The edit runs the same array kernels as the streamed export (float64 accumulation, one rounding).
 */
export function orthogonalizeModel(
  model: HookedModel,
  unit: UnitVector,
  options: OrthogonalizeOptions = {},
  caller: {
    /** Called with each weight's values before they are edited (to keep a copy). */
    onBefore?: (key: string, values: Float32Array) => void;
    /** Keys of the plan the caller edits itself (after this call: the untying copy is of the original). */
    leave?: ReadonlySet<string>;
  } = {},
): string[] {
  const { onBefore, leave } = caller;
  // (Norm-preserving: a transposed weight [in, d_model] holds HF's columns as rows, so the row kernel rescales them.)
  const plan = planModelEdit(model, unit, options);
  const keys = roleKeys(model.arch);
  const { stored } = model.params;
  const native = model.params.native ?? {};
  // Untie: the unembedding becomes a copy of the embedding, held where the embedding is. A model loaded
  // tied holds no unembedding of its own, whatever its config says.
  if (native[keys.embedding] && !native[keys.unembedding]) native[keys.unembedding] = native[keys.embedding].clone();
  else if (!native[keys.embedding] && !stored[keys.unembedding])
    stored[keys.unembedding] = tf.tensor(stored[keys.embedding].dataSync(), stored[keys.embedding].shape, "float32");
  for (const [key, { kind, vector, scale, normPreserving }] of plan.edits) {
    if (leave?.has(key)) continue;
    // A linear weight held as stored, [d_model, in], has columns of d_model; transposed ones [in, d_model],
    // the embedding and biases have rows of it.
    const asStored = Object.hasOwn(stored, key) ? stored[key].shape : Object.hasOwn(native, key) ? native[key].shape : undefined;
    if (kind === "weight" && asStored) {
      const cols = asStored[1]!;
      replaceHeld(model, key, (w) => {
        onBefore?.(key, w);
        if (normPreserving) return projectColumnsNormPreserving(w, cols, vector!, scale);
        const c = new Float64Array(cols);
        accumulateColumnCoefficients(c, w, 0, vector!);
        return projectColumnsF32(w, 0, vector!, c, scale);
      });
    } else
      replaceHeld(model, key, (values) => {
        onBefore?.(key, values);
        return normPreserving ? projectRowsNormPreserving(values, vector!, scale) : projectRowsArray(values, vector!, scale);
      });
  }
  return [...plan.edits.keys()];
}

/**
 * Orthogonalise one tensor as a Hugging Face checkpoint stores it (row-major values): the whole-tensor
 * form of `orthogonalizeStream`.
 */
export function orthogonalizeTensor(
  kind: WriterKind,
  values: Float32Array,
  shape: readonly number[],
  unit: UnitVector,
  scale = 1,
  normPreserving = false,
): Float32Array {
  checkShape(kind, shape, unit.length);
  if (normPreserving && kind === "weight") return projectColumnsNormPreserving(values, shape[1], unit, scale);
  if (normPreserving && kind === "embedding") return projectRowsNormPreserving(values, unit, scale);
  if (kind !== "weight") return projectRowsArray(values, unit, scale);
  const c = new Float64Array(shape[1]);
  accumulateColumnCoefficients(c, values, 0, unit);
  return projectColumnsF32(values, 0, unit, c, scale);
}

export function checkShape(kind: WriterKind, shape: readonly number[], d: number): void {
  if (kind === "weight" && (shape.length !== 2 || shape[0] !== d))
    throw new Error(`weight of shape [${shape}] does not have d_model ${d} rows`);
  if (kind !== "weight" && shape[shape.length - 1] !== d) throw new Error(`${kind} of shape [${shape}] does not end in d_model ${d}`);
}
