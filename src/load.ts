// Opening a checkpoint (a folder or a Hub id) and loading it for the tensor backend. An opened
// Checkpoint is what a run carries from stage to stage: its config, architecture and open weight files
// are read once, by loading and by the export alike.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { backendInfo, initBackend, type BackendName } from "./backend.ts";
import { checkMemory, heldNatively, planWeights, type WeightLayout, type WeightPlan } from "./memory.ts";
import { resolveModel } from "./hub.ts";
import { CheckpointError, CheckpointWeights } from "./checkpoint.ts";
import { architectureFor, loadConfig, tiedEmbeddings, type ModelConfig } from "./config.ts";
import { exists } from "./files.ts";
import { HookedModel } from "./hooked-model.ts";
import type { Architecture } from "./models/architecture.ts";
import type { Params } from "./models/decoder.ts";
import { expectedTensors, roleKeys } from "./models/tensors.ts";
import { isFloatDtype } from "./safetensors/dtype.ts";
import { NativeMatrix, type HalfDtype } from "./blas/native-matrix.ts";
import { mappedWords } from "./mapped.ts";
import { largeUint16Array } from "./pages.ts";
import { ChatTokenizer, TokenizerError } from "./tokenizer.ts";

export interface Checkpoint {
  /** The local folder (a Hub id resolves to its cached snapshot). */
  dir: string;
  config: ModelConfig;
  arch: Architecture;
  weights: CheckpointWeights;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** Progress of Hub downloads, when `source` is a Hub model id. */
  onDownload?: (file: string, doneBytes: number, totalBytes: number | undefined) => void;
}

export interface LoadOptions extends OpenOptions {
  /** Initialise this backend instead of the automatic choice (also ABLITERATE_BACKEND). */
  backend?: BackendName;
  /**
   * How to hold the weights instead of the automatic choice (also ABLITERATE_WEIGHT_LAYOUT): `native`
   * (outside the wasm heap; the default with native BLAS; the weights are then not differentiable),
   * `transposed` or `stored` (tensors in the backend's memory).
   */
  layout?: WeightLayout;
  /**
   * How to hold the matrices on the native layout (also ABLITERATE_WEIGHT_PRECISION): `stored` (the default
   * there): a BF16 or F16 checkpoint's matrices kept in their 16 bits, mapped from the file, half the memory,
   * widened exactly as they are multiplied (float32 arithmetic either way); or `float32`: converted when loaded
   * (the default on the other layouts, where weights are tensors), faster prefill, twice the memory.
   */
  precision?: WeightPrecision;
}

export type WeightPrecision = "float32" | "stored";

/** `value` as a WeightPrecision, or an error naming `where` it came from (an option, a flag, a variable). */
export function parseWeightPrecision(value: string, where: string): WeightPrecision {
  if (value !== "float32" && value !== "stored") throw new Error(`${where} must be float32 or stored, got "${value}"`);
  return value;
}

/** Where the stored precision was asked for, in words, for errors. */
const precisionSource = (precision?: WeightPrecision) =>
  precision ? "the precision option" : "ABLITERATE_WEIGHT_PRECISION, which the command line's --weight-precision sets";

/**
 * The precision asked for: the option, else ABLITERATE_WEIGHT_PRECISION; undefined when neither says, and the
 * default applies (stored on the native layout, float32 elsewhere).
 */
export function weightPrecision(precision?: WeightPrecision): WeightPrecision | undefined {
  const asked = precision ?? (process.env.ABLITERATE_WEIGHT_PRECISION || undefined);
  return asked === undefined ? undefined : parseWeightPrecision(asked, precisionSource(precision));
}

const HALF_DTYPES = new Set(["BF16", "F16"]);

/** Open a checkpoint folder or Hub id: config.json parsed, weight files opened and indexed. Close it when done. */
export async function openCheckpoint(
  source: string,
  options: OpenOptions & { check?: (config: ModelConfig, arch: Architecture, dir: string) => void } = {},
): Promise<Checkpoint> {
  const dir = await resolveModel(source, { onProgress: options.onDownload });
  const config = await loadConfig(dir);
  const arch = architectureFor(config);
  options.check?.(config, arch, dir);
  const weights = await CheckpointWeights.open(dir);
  return { dir, config, arch, weights, close: () => weights.close() };
}

/**
 * Load a Hugging Face checkpoint folder, a Hub model id (`org/name`, downloaded into the Hub cache), or
 * an opened Checkpoint (left open): config.json, safetensors weights (single or sharded; F32, F16 or
 * BF16), tokenizer.json and tokenizer_config.json when present.
 */
export async function loadModel(source: string | Checkpoint, options: LoadOptions = {}): Promise<HookedModel> {
  const backend = options.backend ? await initBackend({ backend: options.backend }) : await backendInfo();
  const asked = weightPrecision(options.precision);
  // The stored precision when asked for, and by default on the native layout (where matrices lie outside the heap).
  const storedFor = (config: ModelConfig, arch: Architecture) =>
    asked === "stored" || (asked === undefined && planWeights(config, arch, backend, options.layout).layout === "native");
  // Before any weight is read: the model alone (one short prompt) must fit the backend's memory; with the
  // stored precision, as config.json's torch_dtype says, then as the weights' headers say.
  const check = (config: ModelConfig, arch: Architecture, dir: string, half: (key: string) => boolean) =>
    checkMemory(
      dir,
      config,
      arch,
      planWeights(config, arch, backend, options.layout, half),
      { batch: 1, promptTokens: 16, newTokens: 0, logits: "last" },
      backend,
    );
  const declaredHalf = (config: ModelConfig, arch: Architecture) => () =>
    storedFor(config, arch) && /^(bfloat16|float16)$/.test(String(config.torch_dtype ?? ""));
  if (typeof source !== "string") check(source.config, source.arch, source.dir, declaredHalf(source.config, source.arch));
  const checkpoint =
    typeof source === "string"
      ? await openCheckpoint(source, { ...options, check: (c, a, d) => check(c, a, d, declaredHalf(c, a)) })
      : source;
  const { dir, config, arch, weights } = checkpoint;
  const stored = storedFor(config, arch);
  const half = (key: string) => stored && weights.has(key) && HALF_DTYPES.has(weights.info(key).dtype);
  let plan: WeightPlan;
  try {
    if (stored) check(config, arch, dir, half);
    plan = planWeights(config, arch, backend, options.layout, half);
    if (asked === "stored" && plan.layout !== "native")
      throw new Error(
        `${dir}: the stored weight precision (${precisionSource(options.precision)}) ` +
          `holds matrices outside the wasm heap, which needs the native layout (the native BLAS path on the wasm ` +
          `backend); the weights would be held ${plan.layout}`,
      );
  } catch (error) {
    if (typeof source === "string") await checkpoint.close();
    throw error;
  }
  const params: Params = { transposed: {}, stored: {}, ...(plan.layout === "native" ? { native: {} } : {}) };
  let dtypes: Record<string, string> = {};
  try {
    checkCheckpointTensors(checkpoint);
    dtypes = Object.fromEntries(expectedTensors(arch, config).map((e) => [e.key, weights.info(e.key).dtype]));
    for (const e of expectedTensors(arch, config)) {
      if (params.native && heldNatively(e)) {
        const values = half(e.key)
          ? { dtype: weights.info(e.key).dtype as HalfDtype, words: await readWords(weights, e.key) }
          : await weights.readFloat32(e.key);
        params.native[e.key] = new NativeMatrix(values, e.shape as [number, number]);
        continue;
      }
      const t = tf.tensor(await weights.readFloat32(e.key), e.shape, "float32");
      if (e.linear && plan.layout === "transposed") {
        params.transposed[e.key] = tf.transpose(t as tf.Tensor2D); // [in, out]
        t.dispose();
      } else params.stored[e.key] = t;
    }
  } catch (error) {
    tf.dispose([...Object.values(params.transposed), ...Object.values(params.stored)]);
    for (const m of Object.values(params.native ?? {})) m.dispose();
    throw error;
  } finally {
    if (typeof source === "string") await checkpoint.close();
  }
  let tokenizer: ChatTokenizer | TokenizerError;
  try {
    tokenizer = await ChatTokenizer.load(dir);
  } catch (error) {
    if (!(error instanceof TokenizerError)) throw error;
    tokenizer = error;
  }
  return new HookedModel(dir, config, arch, params, tokenizer, await readGenerationConfig(dir), plan, dtypes);
}

/**
 * A 16-bit tensor's values as stored: a view of its file mapped copy-on-write (mapped.ts), or where it cannot be
 * mapped, read into a new array of words (aligned, however the file lays them).
 */
async function readWords(weights: CheckpointWeights, key: string): Promise<Uint16Array> {
  const mapped = mappedWords(weights.fileRange(key));
  if (mapped) return mapped;
  const info = weights.info(key);
  const words = largeUint16Array((info.end - info.begin) / 2);
  await weights.readRange(key, 0, info.end - info.begin, new Uint8Array(words.buffer, words.byteOffset, words.byteLength));
  return words;
}

const IGNORED_KEYS = /rotary_emb\.inv_freq$/;

/**
 * The checkpoint's tensors must be exactly the architecture's (outside a multimodal checkpoint's text
 * prefix, anything), each with the shape config.json implies and a float dtype. Loading and the export
 * both run this check.
 */
export function checkCheckpointTensors(
  { config, arch, weights, dir }: Pick<Checkpoint, "config" | "arch" | "weights" | "dir">,
  options: { tiedHeadStored?: boolean } = {},
): void {
  const expected = expectedTensors(arch, config);
  const wanted = new Set(expected.map((e) => e.key));
  for (const e of expected) {
    if (!weights.has(e.key))
      throw new CheckpointError(`${dir}: missing tensor ${e.key} (expected by config.json, model_type ${config.model_type})`);
    const info = weights.info(e.key);
    if (!tf.util.arraysEqual(info.shape, e.shape)) {
      throw new CheckpointError(
        `${join(dir, info.file)}: ${e.key}: expected [${e.shape.join(", ")}] from config.json, got [${info.shape.join(", ")}]`,
      );
    }
    if (!isFloatDtype(info.dtype))
      throw new CheckpointError(
        `${join(dir, info.file)}: ${e.key} has dtype ${info.dtype}; only F32, F16 and BF16 weights can be loaded and edited`,
      );
  }
  const tiedHead = tiedEmbeddings(config) || options.tiedHeadStored ? roleKeys(arch).unembedding : undefined;
  const extra = weights.names.filter((n) => n.startsWith(arch.keyPrefix) && !wanted.has(n) && !IGNORED_KEYS.test(n) && n !== tiedHead);
  if (extra.length > 0)
    throw new CheckpointError(
      `${dir}: unexpected tensors for model_type ${config.model_type}: ${extra.slice(0, 5).join(", ")}${
        extra.length > 5 ? ` and ` + `${extra.length - 5} more` : ""
      }`,
    );
}

async function readGenerationConfig(dir: string): Promise<Record<string, unknown>> {
  const path = join(dir, "generation_config.json");
  if (!(await exists(path))) return {};
  try {
    return JSON.parse(await readFile(path, "utf8"));
  } catch (error) {
    throw new CheckpointError(`${path}: not valid JSON (${(error as Error).message})`);
  }
}
