// HookedModel: a loaded checkpoint with TransformerLens's forward / run_with_cache / run_with_hooks /
// generate, named in camelCase. Loading lives in load.ts, the forward pass in models/decoder.ts.
import * as tf from "@tensorflow/tfjs-core";
import { eosTokenIds, type ModelConfig } from "./config.ts";
import { checkHookNames, matches, type FwdHook, type NameFilter } from "./hooks.ts";
import type { WeightPlan } from "./memory.ts";
import type { Architecture } from "./models/architecture.ts";
import { Decoder, type KvCache, type Params } from "./models/decoder.ts";
import { ChatTokenizer, padLeft, TokenizerError, type Batch } from "./tokenizer.ts";
import { sampleToken, makeRng, type SamplingOptions } from "./sampling.ts";

/** Token ids to run: ragged sequences (padded on the left for you), or a padded batch with its mask. */
export type TokensInput = number[][] | Batch;

export interface RunOptions {
  /** Hooks for this run only: [name or filter, fn]. */
  fwdHooks?: readonly FwdHook[];
  /**
   * 1 on real tokens, 0 on padding, when `tokens` is an already padded rectangle of ids (as
   * TransformerLens takes it); without it, rows of different lengths are padded on the left for you.
   */
  attentionMask?: number[][];
  /** Compute logits at every position (default) or only at the last, which is all scores and generation need. */
  logits?: "all" | "last";
}

export interface CacheOptions extends RunOptions {
  /** Which hook points to record (default: all). */
  namesFilter?: NameFilter;
  /**
   * Which positions of the (left-padded) sequence to keep in the cache: indices, negative ones counting
   * from the end, so `[-1]` is the last token of every sequence. Default: all positions.
   */
  cachePositions?: readonly number[];
}

export interface GenerateOptions extends Omit<RunOptions, "logits">, SamplingOptions {
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
    if (!t)
      throw new Error(
        `the cache holds no activation "${name}" (it holds: ${[...this.tensors.keys()]
          .slice(0, 6)
          .join(", " + "")}${this.tensors.size > 6 ? ", ..." : ""})`,
      );
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

export class HookedModel {
  readonly decoder: Decoder;

  constructor(
    /** The checkpoint folder it was loaded from. */
    readonly dir: string,
    readonly config: ModelConfig,
    arch: Architecture,
    params: Params,
    private readonly tokenizerOrError: ChatTokenizer | TokenizerError,
    readonly generationConfig: Record<string, unknown>,
    /** How the weights are held, and their bytes (see memory.ts). */
    readonly weightPlan: WeightPlan = { layout: "transposed", weightBytes: 0, packedBytes: 0 },
    /** The dtype each weight has in the checkpoint (every weight is computed in float32). */
    readonly storedDtypes: Readonly<Record<string, string>> = {},
  ) {
    this.decoder = new Decoder(config, arch, params);
  }

  // TransformerLens's cfg names.
  get nLayers(): number {
    return this.decoder.nLayers;
  }
  get dModel(): number {
    return this.decoder.dModel;
  }
  get dVocab(): number {
    return this.config.vocab_size;
  }
  get arch(): Architecture {
    return this.decoder.arch;
  }
  get params(): Params {
    return this.decoder.params;
  }

  /** Number of weights held (each counted once). */
  get parameterCount(): number {
    return [
      ...Object.values(this.params.transposed),
      ...Object.values(this.params.stored),
      ...Object.values(this.params.native ?? {}),
    ].reduce((n, t) => n + t.size, 0);
  }

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

  /** A padded batch from ragged ids (padded on the left here) or from ids with their mask. */
  private padded(tokens: TokensInput, mask?: number[][]): Batch {
    if (Array.isArray(tokens) && !mask) return padLeft(tokens, this.padId);
    if (!Array.isArray(tokens) && mask) throw new Error("attentionMask is given twice: in the batch and as an option");
    const { inputIds, attentionMask } = Array.isArray(tokens) ? { inputIds: tokens, attentionMask: mask! } : tokens;
    if (inputIds.length !== attentionMask.length || inputIds.some((row, i) => row.length !== attentionMask[i].length)) {
      throw new Error(`attentionMask must have the shape of inputIds [${inputIds.length}, ${inputIds[0]?.length}]`);
    }
    if (inputIds.some((row) => row.length !== inputIds[0].length))
      throw new Error("with an attentionMask, every row of inputIds must have the same length (pad them)");
    return { inputIds, attentionMask };
  }

  /** Refuse a sequence longer than the model's context (max_position_embeddings), saying so. */
  private checkContext(length: number, generating: boolean): void {
    const context = this.config.max_position_embeddings;
    if (context !== undefined && length > context)
      throw new Error(
        `a sequence of ${length} tokens is longer than the model's context of ${context} tokens (max_position_embeddings in ` +
          `config.json); shorten the prompt${generating ? " or generate fewer tokens" : ""}`,
      );
  }

  private checkIds(batch: Batch): void {
    for (const row of batch.inputIds) {
      for (const id of row) {
        if (!Number.isInteger(id) || id < 0 || id >= this.dVocab)
          throw new Error(`token id ${id} is outside the vocabulary [0, ${this.dVocab})`);
      }
    }
  }

  private run(
    batch: Batch,
    options: {
      fwdHooks?: readonly FwdHook[];
      record?: (name: string, activation: tf.Tensor) => void;
      kvCache?: KvCache;
      /** The mask over cached and new positions, when a KV cache holds earlier ones. */
      fullMask?: number[][];
      logits: "all" | "last";
    },
  ): tf.Tensor3D {
    this.checkIds(batch);
    this.checkContext((options.fullMask ?? batch.attentionMask)[0].length, options.kvCache !== undefined);
    const hooks = options.fwdHooks ?? [];
    checkHookNames(
      hooks.map(([f]) => f),
      this.nLayers,
    );
    return tf.tidy(() =>
      this.decoder.forward(
        { inputIds: batch.inputIds, attentionMask: options.fullMask ?? batch.attentionMask },
        {
          kvCache: options.kvCache,
          logits: options.logits,
          tidyLayers: true,
          runHook: (name, layer, activation) => {
            let x = activation;
            for (const [filter, fn] of hooks) {
              if (!matches(filter, name)) continue;
              const replaced = fn(x, { name, layer });
              if (replaced) {
                if (!tf.util.arraysEqual(replaced.shape, x.shape))
                  throw new Error(`hook on ${name} returned shape [${replaced.shape}], expected [${x.shape}]`);
                x = replaced;
              }
            }
            options.record?.(name, x);
            return x;
          },
        },
      ),
    );
  }

  /** Logits [batch, pos, d_vocab] (pos 1 with `logits: "last"`). The caller disposes them. */
  forward(tokens: TokensInput, options: RunOptions = {}): tf.Tensor3D {
    return this.run(this.padded(tokens, options.attentionMask), { fwdHooks: options.fwdHooks, logits: options.logits ?? "all" });
  }

  /** TransformerLens's run_with_hooks: hooks are active for this call only. */
  runWithHooks(tokens: TokensInput, options: RunOptions = {}): tf.Tensor3D {
    return this.forward(tokens, options);
  }

  /** Logits and the activations at the chosen hook points and positions. The caller disposes both. */
  runWithCache(tokens: TokensInput, options: CacheOptions = {}): { logits: tf.Tensor3D; cache: ActivationCache } {
    const batch = this.padded(tokens, options.attentionMask);
    const length = batch.inputIds[0].length;
    const kept = options.cachePositions?.map((p) => {
      const index = p < 0 ? length + p : p;
      if (!Number.isInteger(p) || index < 0 || index >= length)
        throw new Error(`cache position ${p} is outside the sequence of length ${length}`);
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
          cache.tensors.set(name, tf.keep(kept ? tf.gather(x, kept, 1) : x.clone())); // [batch, kept positions, d_model]
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
    const batch = this.padded(tokens, options.attentionMask);
    const rows = batch.inputIds.length;
    const maxNewTokens = options.maxNewTokens ?? 64;
    const stop = new Set(options.stopTokens ?? this.stopTokens);
    const rng = makeRng(options.seed ?? 0);
    const kvCache: KvCache = { keys: [], values: [], lengths: [] };
    const fullMask = batch.attentionMask.map((row) => [...row]);
    const out: number[][] = Array.from({ length: rows }, () => []);
    const done = new Array<boolean>(rows).fill(false);
    try {
      let step: Batch = batch;
      this.checkContext(fullMask[0].length, false); // a prompt past the context is refused, not answered with nothing
      // Generation stops at the model's context length.
      const room = (this.config.max_position_embeddings ?? Infinity) - fullMask[0].length;
      for (let i = 0; i < Math.min(maxNewTokens, room) && !done.every(Boolean); i++) {
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

  /** An independent copy (weights cloned), e.g. to edit while keeping the original. */
  clone(): HookedModel {
    const copy = <T extends tf.Tensor>(held: Record<string, T>) =>
      Object.fromEntries(Object.entries(held).map(([k, t]) => [k, tf.clone(t)])) as Record<string, T>;
    const native = this.params.native && Object.fromEntries(Object.entries(this.params.native).map(([k, m]) => [k, m.clone()]));
    return new HookedModel(
      this.dir,
      this.config,
      this.arch,
      { transposed: copy(this.params.transposed), stored: copy(this.params.stored), ...(native ? { native } : {}) },
      this.tokenizerOrError,
      this.generationConfig,
      this.weightPlan,
      this.storedDtypes,
    );
  }

  dispose(): void {
    tf.dispose([...Object.values(this.params.transposed), ...Object.values(this.params.stored)]);
    for (const m of Object.values(this.params.native ?? {})) m.dispose();
  }
}
