// HookedModel: a Hugging Face checkpoint loaded for the tensor backend, with TransformerLens's
// forward / runWithCache / runWithHooks / generate, named in camelCase.
import { readFile, access } from "node:fs/promises";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend, WASM_HEAP_LIMIT_BYTES, type BackendName } from "./backend.ts";
import { resolveModel } from "./hub.ts";
import { CheckpointError, CheckpointWeights } from "./checkpoint.ts";
import { eosTokenIds, loadConfig, tiedEmbeddings, type ModelConfig } from "./config.ts";
import { checkHookNames, matches, type FwdHook, type NameFilter } from "./hooks.ts";
import { expectedTensors } from "./models/architecture.ts";
import { Decoder, type KvCache, type Params } from "./models/decoder.ts";
import { architectureFor } from "./models/index.ts";
import { ChatTokenizer, padLeft, TokenizerError, type Batch } from "./tokenizer.ts";
import { sampleToken, makeRng, type SamplingOptions } from "./sampling.ts";

/** Token ids to run: ragged sequences (padded on the left for you), or a padded batch with its mask. */
export type TokensInput = number[][] | Batch;

export interface LoadOptions {
  /** Force a backend instead of the automatic choice (also ABLITERATE_BACKEND). */
  backend?: BackendName;
  /** Progress of Hub downloads, when `source` is a Hub model id. */
  onDownload?: (file: string, doneBytes: number, totalBytes: number | undefined) => void;
}

export interface RunOptions {
  /** Hooks for this run only: [name or filter, fn]. */
  fwdHooks?: readonly FwdHook[];
  /**
   * 1 on real tokens, 0 on padding, when `tokens` is an already padded rectangle of ids (as
   * TransformerLens takes it); without it, rows of different lengths are padded on the left for you.
   */
  attentionMask?: number[][];
}

export interface CacheOptions extends RunOptions {
  /** Which hook points to record (default: all). */
  namesFilter?: NameFilter;
  /**
   * Which positions to keep: indices into the (left-padded) sequence; negative ones count from the
   * end, so `[-1]` is the last token of every sequence. Default: all positions.
   */
  positions?: readonly number[];
  /** Compute logits at every position (default) or only the last. */
  logits?: "all" | "last";
}

export interface GenerateOptions extends RunOptions, SamplingOptions {
  maxNewTokens?: number;
  /** Token ids that end a sequence (default: eos ids of config.json, generation_config.json and the tokenizer). */
  stopTokens?: readonly number[];
  /** Called after every decoding step with the number of steps done. */
  onStep?: (step: number) => void;
}

export interface Generation {
  /** New tokens per sequence, the stop token excluded. */
  tokens: number[][];
  /** Decoded new tokens (needs a tokenizer; empty strings without one). */
  texts: string[];
}

/** Recorded activations by hook name: [batch, positions, d_model]. Whoever receives it disposes it. */
export class ActivationCache {
  readonly tensors = new Map<string, tf.Tensor>();

  get(name: string): tf.Tensor {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`the cache holds no activation "${name}" (it holds: ${[...this.tensors.keys()].slice(0, 6).join(", ")}${this.tensors.size > 6 ? ", ..." : ""})`);
    return t;
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  get names(): string[] {
    return [...this.tensors.keys()];
  }

  dispose(): void {
    for (const t of this.tensors.values()) t.dispose();
    this.tensors.clear();
  }
}

const MASKED = -1e9;

export class HookedModel {
  readonly decoder: Decoder;
  private readonly tokenizerOrError: ChatTokenizer | TokenizerError;

  constructor(
    readonly dir: string,
    readonly config: ModelConfig,
    params: Params,
    tokenizer: ChatTokenizer | TokenizerError,
    readonly generationConfig: Record<string, unknown>,
  ) {
    this.decoder = new Decoder(config, architectureFor(config), params);
    this.tokenizerOrError = tokenizer;
  }

  // TransformerLens's cfg names.
  get nLayers(): number { return this.decoder.nLayers; }
  get dModel(): number { return this.decoder.dModel; }
  get dVocab(): number { return this.config.vocab_size; }
  get params(): Params { return this.decoder.params; }

  /** The tokenizer; throws the load error if the folder had none. */
  get tokenizer(): ChatTokenizer {
    if (this.tokenizerOrError instanceof Error) throw this.tokenizerOrError;
    return this.tokenizerOrError;
  }

  get hasTokenizer(): boolean {
    return !(this.tokenizerOrError instanceof Error);
  }

  /** Pad id: tokenizer's pad token, else config's pad_token_id, else eos. */
  get padId(): number {
    const configPad = this.config.pad_token_id ?? eosTokenIds(this.config)[0] ?? 0;
    return this.hasTokenizer ? this.tokenizer.padId(configPad) : configPad;
  }

  /** Token ids that end generation by default. */
  get stopTokens(): number[] {
    const ids = new Set(eosTokenIds(this.config));
    const gen = this.generationConfig.eos_token_id;
    for (const id of Array.isArray(gen) ? gen : gen == null ? [] : [gen]) ids.add(id as number);
    if (this.hasTokenizer) {
      const eos = this.tokenizer.specialToken("eos_token");
      const id = eos === undefined ? undefined : this.tokenizer.tokenId(eos);
      if (id !== undefined) ids.add(id);
    }
    return [...ids];
  }

  /** Chat-template the instructions and tokenise them into a left-padded batch. */
  tokenizeInstructions(instructions: readonly string[], system?: string): Batch {
    const texts = instructions.map((i) => this.tokenizer.formatInstruction(i, system));
    return this.tokenizer.encodeBatch(texts, this.padId);
  }

  private toBatch(tokens: TokensInput, mask?: number[][]): Batch {
    if (Array.isArray(tokens) && !mask) return padLeft(tokens, this.padId);
    if (!Array.isArray(tokens) && mask) throw new Error("attentionMask is given twice: in the batch and as an option");
    const { inputIds, attentionMask } = Array.isArray(tokens) ? { inputIds: tokens, attentionMask: mask! } : tokens;
    if (inputIds.length !== attentionMask.length || inputIds.some((row, i) => row.length !== attentionMask[i].length)) {
      throw new Error(`attentionMask must have the shape of inputIds [${inputIds.length}, ${inputIds[0]?.length}]`);
    }
    if (inputIds.some((row) => row.length !== inputIds[0].length)) throw new Error("with an attentionMask, every row of inputIds must have the same length (pad them)");
    return { inputIds, attentionMask };
  }

  private checkIds(batch: Batch): void {
    for (const row of batch.inputIds) {
      for (const id of row) {
        if (!Number.isInteger(id) || id < 0 || id >= this.dVocab) throw new Error(`token id ${id} is outside the vocabulary [0, ${this.dVocab})`);
      }
    }
  }

  /** Tensors and tables one forward call needs, for `past` cached positions plus the batch's. */
  private inputsFor(batch: Batch, fullMask: number[][]) {
    const rows = batch.inputIds.length;
    const pos = batch.inputIds[0].length;
    const keys = fullMask[0].length;
    const past = keys - pos;
    const positionIds: number[][] = [];
    const bias = new Float32Array(rows * pos * keys);
    for (let b = 0; b < rows; b++) {
      // Position ids count real tokens only, so a left-padded sequence sees the positions it would alone.
      const ids: number[] = [];
      let seen = 0;
      for (let j = 0; j < keys; j++) {
        if (fullMask[b][j]) seen++;
        if (j >= past) ids.push(Math.max(seen - 1, 0));
      }
      positionIds.push(ids);
      for (let t = 0; t < pos; t++) {
        for (let j = 0; j < keys; j++) {
          const allowed = j <= past + t && fullMask[b][j] === 1;
          bias[(b * pos + t) * keys + j] = allowed ? 0 : MASKED;
        }
      }
    }
    return {
      inputIds: tf.tensor2d(batch.inputIds, [rows, pos], "int32"),
      positionIds,
      maskBias: tf.tensor4d(bias, [rows, 1, pos, keys]),
    };
  }

  private run(batch: Batch, options: {
    fwdHooks?: readonly FwdHook[];
    record?: (name: string, activation: tf.Tensor) => void;
    kvCache?: KvCache;
    fullMask?: number[][];
    logits: "all" | "last";
  }): tf.Tensor3D {
    this.checkIds(batch);
    const hooks = options.fwdHooks ?? [];
    checkHookNames(hooks.map(([f]) => f), this.nLayers);
    const inputs = this.inputsFor(batch, options.fullMask ?? batch.attentionMask);
    try {
      return tf.tidy(() =>
        this.decoder.forward(inputs, {
          kvCache: options.kvCache,
          logits: options.logits,
          tidyLayers: true,
          runHook: (name, layer, activation) => {
            let x = activation;
            for (const [filter, fn] of hooks) {
              if (!matches(filter, name)) continue;
              const replaced = fn(x, { name, layer });
              if (replaced) {
                if (!tf.util.arraysEqual(replaced.shape, x.shape)) throw new Error(`hook on ${name} returned shape [${replaced.shape}], expected [${x.shape}]`);
                x = replaced;
              }
            }
            options.record?.(name, x);
            return x;
          },
        }),
      );
    } finally {
      inputs.inputIds.dispose();
      inputs.maskBias.dispose();
    }
  }

  /** Logits [batch, pos, d_vocab]. The caller disposes them. */
  forward(tokens: TokensInput, options: RunOptions & { logits?: "all" | "last" } = {}): tf.Tensor3D {
    return this.run(this.toBatch(tokens, options.attentionMask), { fwdHooks: options.fwdHooks, logits: options.logits ?? "all" });
  }

  /** TransformerLens's run_with_hooks: hooks are active for this call only. */
  runWithHooks(tokens: TokensInput, options: RunOptions & { logits?: "all" | "last" } = {}): tf.Tensor3D {
    return this.forward(tokens, options);
  }

  /** Logits and the activations at the chosen hook points and positions. The caller disposes both. */
  runWithCache(tokens: TokensInput, options: CacheOptions = {}): { logits: tf.Tensor3D; cache: ActivationCache } {
    const batch = this.toBatch(tokens, options.attentionMask);
    const length = batch.inputIds[0].length;
    const positions = options.positions?.map((p) => {
      const index = p < 0 ? length + p : p;
      if (!Number.isInteger(p) || index < 0 || index >= length) throw new Error(`position ${p} is outside the sequence of length ${length}`);
      return index;
    });
    const filter = options.namesFilter;
    if (filter !== undefined) checkHookNames([filter], this.nLayers);
    const cache = new ActivationCache();
    try {
      const logits = this.run(batch, {
        fwdHooks: options.fwdHooks,
        logits: options.logits ?? "all",
        record: (name, x) => {
          if (filter !== undefined && !matches(filter, name)) return;
          // Keep only the chosen positions: [batch, positions, d_model].
          const kept = positions ? tf.gather(x, positions, 1) : x.clone();
          cache.tensors.set(name, tf.keep(kept));
        },
      });
      return { logits, cache };
    } catch (error) {
      cache.dispose();
      throw error;
    }
  }

  /**
   * Autoregressive generation with a KV cache; the hooks act at every step (the blog's get_generations).
   * Greedy by default; `temperature` > 0 samples (with `topK` / `topP`, reproducible with `seed`).
   */
  async generate(tokens: TokensInput, options: GenerateOptions = {}): Promise<Generation> {
    const batch = this.toBatch(tokens, options.attentionMask);
    const rows = batch.inputIds.length;
    const maxNewTokens = options.maxNewTokens ?? 64;
    const stop = new Set(options.stopTokens ?? this.stopTokens);
    const rng = makeRng(options.seed ?? 0);
    const kvCache: KvCache = { keys: [], values: [] };
    const fullMask = batch.attentionMask.map((row) => [...row]);
    const out: number[][] = Array.from({ length: rows }, () => []);
    const done = new Array<boolean>(rows).fill(false);
    try {
      let step: Batch = batch;
      for (let i = 0; i < maxNewTokens && !done.every(Boolean); i++) {
        const logits = this.run(step, { fwdHooks: options.fwdHooks, kvCache, fullMask, logits: "last" }); // [batch, 1, d_vocab]
        const values = (await logits.data()) as Float32Array;
        logits.dispose();
        const next: number[] = [];
        for (let b = 0; b < rows; b++) {
          const token = sampleToken(values.subarray(b * this.dVocab, (b + 1) * this.dVocab), options, rng);
          if (!done[b]) {
            if (stop.has(token)) done[b] = true;
            else out[b].push(token);
          }
          next.push(token);
        }
        for (const row of fullMask) row.push(1);
        step = { inputIds: next.map((t) => [t]), attentionMask: next.map(() => [1]) };
        options.onStep?.(i + 1);
      }
    } finally {
      for (const t of [...kvCache.keys, ...kvCache.values]) t?.dispose();
    }
    const texts = out.map((ids) => (this.hasTokenizer ? this.tokenizer.decode(ids) : ""));
    return { tokens: out, texts };
  }

  dispose(): void {
    for (const t of Object.values(this.decoder.params)) t.dispose();
  }
}

/**
 * Load a Hugging Face checkpoint folder, or a Hub model id (`org/name`, downloaded into the Hub
 * cache): config.json, safetensors weights (single or sharded; F32, F16 or BF16), tokenizer.json
 * and tokenizer_config.json when present.
 */
export async function loadModel(source: string, options: LoadOptions = {}): Promise<HookedModel> {
  const backend = await initBackend({ backend: options.backend });
  const dir = await resolveModel(source, { onProgress: options.onDownload });
  const config = await loadConfig(dir);
  const arch = architectureFor(config);
  const expected = expectedTensors(arch, config);
  // Every weight is held as float32 (a tied unembedding adds a transposed copy of the embedding).
  const bytes = expected.reduce((sum, e) => sum + e.shape.reduce((a, b) => a * b, 4), 0) + (tiedEmbeddings(config) ? 4 * config.vocab_size * config.hidden_size : 0);
  if (backend.name === "wasm" && bytes > WASM_HEAP_LIMIT_BYTES * 0.8) {
    throw new CheckpointError(`${dir}: the model needs about ${(bytes / 1024 ** 3).toFixed(1)} GB as float32, more than the wasm backend's 4 GB heap can hold; use a machine where @tensorflow/tfjs-node-gpu or @tensorflow/tfjs-node installs, or a smaller model`);
  }
  const weights = await CheckpointWeights.open(dir);
  const params: Params = {};
  try {
    checkTensorSet(weights, expected.map((e) => e.key), config);
    for (const e of expected) {
      const info = weights.info(e.key);
      if (!tf.util.arraysEqual(info.shape, e.shape)) {
        throw new CheckpointError(`${join(dir, info.file)}: ${e.key}: expected [${e.shape.join(", ")}] from config.json, got [${info.shape.join(", ")}]`);
      }
      const values = await weights.readFloat32(e.key);
      const t = tf.tensor(values, e.shape, "float32");
      params[e.key] = e.transposed ? tf.tidy(() => tf.transpose(t)) : t;
      if (e.transposed) t.dispose();
    }
    if (tiedEmbeddings(config)) params["lm_head.weight"] = tf.tidy(() => tf.transpose(params["model.embed_tokens.weight"])); // [d_model, d_vocab]
  } catch (error) {
    for (const t of Object.values(params)) t.dispose();
    throw error;
  } finally {
    await weights.close();
  }
  let tokenizer: ChatTokenizer | TokenizerError;
  try {
    tokenizer = await ChatTokenizer.load(dir);
  } catch (error) {
    if (!(error instanceof TokenizerError)) throw error;
    tokenizer = error;
  }
  return new HookedModel(dir, config, params, tokenizer, await readGenerationConfig(dir));
}

const IGNORED_KEYS = /rotary_emb\.inv_freq$/;

function checkTensorSet(weights: CheckpointWeights, expected: string[], config: ModelConfig): void {
  const wanted = new Set(expected);
  for (const key of expected) {
    if (!weights.has(key)) throw new CheckpointError(`${weights.dir}: missing tensor ${key} (expected by config.json, model_type ${config.model_type})`);
  }
  const extra = weights.names.filter((n) => !wanted.has(n) && !IGNORED_KEYS.test(n) && !(n === "lm_head.weight" && tiedEmbeddings(config)));
  if (extra.length > 0) throw new CheckpointError(`${weights.dir}: unexpected tensors for model_type ${config.model_type}: ${extra.slice(0, 5).join(", ")}${extra.length > 5 ? ` and ${extra.length - 5} more` : ""}`);
}

async function readGenerationConfig(dir: string): Promise<Record<string, unknown>> {
  const path = join(dir, "generation_config.json");
  try {
    await access(path);
  } catch {
    return {};
  }
  try {
    return JSON.parse(await readFile(path, "utf8"));
  } catch (error) {
    throw new CheckpointError(`${path}: not valid JSON (${(error as Error).message})`);
  }
}
