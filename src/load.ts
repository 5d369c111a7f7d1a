// Opening a checkpoint (a folder or a Hub id) and loading it for the tensor backend. An opened
// Checkpoint is what a run carries from stage to stage: its config, architecture and open weight files
// are read once, by loading and by the export alike.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { backendInfo, initBackend, type BackendName } from "./backend.ts";
import { checkMemory, heldNatively, planWeights, type WeightLayout } from "./memory.ts";
import { resolveModel } from "./hub.ts";
import { CheckpointError, CheckpointWeights } from "./checkpoint.ts";
import { architectureFor, loadConfig, tiedEmbeddings, type ModelConfig } from "./config.ts";
import { exists } from "./files.ts";
import { HookedModel } from "./hooked-model.ts";
import type { Architecture } from "./models/architecture.ts";
import type { Params } from "./models/decoder.ts";
import { expectedTensors, roleKeys } from "./models/tensors.ts";
import { isFloatDtype } from "./safetensors/dtype.ts";
import { NativeMatrix } from "./blas/native-matrix.ts";
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
}

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
  // Before any weight is read: the model alone (one short prompt) must fit the backend's memory.
  const check = (config: ModelConfig, arch: Architecture, dir: string) =>
    checkMemory(
      dir,
      config,
      arch,
      planWeights(config, arch, backend, options.layout),
      { batch: 1, promptTokens: 16, newTokens: 0, logits: "last" },
      backend,
    );
  if (typeof source !== "string") check(source.config, source.arch, source.dir);
  const checkpoint = typeof source === "string" ? await openCheckpoint(source, { ...options, check }) : source;
  const { dir, config, arch, weights } = checkpoint;
  const plan = planWeights(config, arch, backend, options.layout);
  const params: Params = { transposed: {}, stored: {}, ...(plan.layout === "native" ? { native: {} } : {}) };
  let dtypes: Record<string, string> = {};
  try {
    checkCheckpointTensors(checkpoint);
    dtypes = Object.fromEntries(expectedTensors(arch, config).map((e) => [e.key, weights.info(e.key).dtype]));
    for (const e of expectedTensors(arch, config)) {
      if (params.native && heldNatively(e)) {
        params.native[e.key] = new NativeMatrix(await weights.readFloat32(e.key), e.shape as [number, number]);
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
