// LoRA adapters (Hu et al. 2021) on a model's linear layers, as PEFT makes them: A [rank, in] drawn from
// U(-1/sqrt(in), 1/sqrt(in)) (PEFT's kaiming_uniform with a = sqrt(5)), B [out, rank] zero, so training
// starts from the model itself; the layer computes W x + (alpha / rank) * B A dropout(x). Merged for export:
// W + (alpha / rank) * B A, in the checkpoint's [out, in] layout.
import * as tf from "@tensorflow/tfjs-core";
import type { HookedModel } from "../hooked-model.ts";
import type { LinearAdapter } from "../models/decoder.ts";
import { expectedTensors } from "../models/tensors.ts";
import type { Architecture } from "../models/architecture.ts";
import type { ModelConfig } from "../models/model-config.ts";
import { makeRng } from "../sampling.ts";

/** The blog's choice (Axolotl's lora_target_linear): every linear layer of attention and MLP. */
export const LORA_DEFAULT_MODULES = [
  "q_proj",
  "k_proj",
  "v_proj",
  "o_proj",
  "gate_proj",
  "up_proj",
  "down_proj",
  "qkv_proj",
  "gate_up_proj",
] as const;

export interface LoraOptions {
  rank?: number;
  alpha?: number;
  /** Dropout on the adapters' input while training. */
  dropout?: number;
  /** Module names whose linear weights get adapters (default: every attention and MLP projection). */
  modules?: readonly string[];
  /** Or exact checkpoint keys of linear weights. */
  keys?: readonly string[];
  seed?: number;
}

/** Makes every set of adapters' variable names unique (tfjs registers variables by name). */
let instances = 0;

/**
 * LoRA's options checked against a model's shapes without loading it: rank a positive integer no larger than
 * the smaller side of any adapted weight (a larger one adds nothing a full update could not, at more memory),
 * alpha positive and finite, dropout in [0, 1).
 */
export function checkLoraOptions(arch: Architecture, config: ModelConfig, options: LoraOptions = {}): void {
  const rank = options.rank ?? 8;
  const alpha = options.alpha ?? 2 * rank;
  const dropout = options.dropout ?? 0;
  if (!Number.isInteger(rank) || rank <= 0) throw new Error(`LoRA rank must be a positive integer, got ${rank}`);
  if (!(alpha > 0 && Number.isFinite(alpha))) throw new Error(`LoRA alpha must be a positive finite number, got ${alpha}`);
  if (!(dropout >= 0 && dropout < 1)) throw new Error(`LoRA dropout must be in [0, 1), got ${dropout}`);
  const modules = options.modules ?? LORA_DEFAULT_MODULES;
  for (const e of expectedTensors(arch, config)) {
    if (!e.linear || !(options.keys ? options.keys.includes(e.key) : modules.some((m) => e.key.endsWith(`.${m}.weight`)))) continue;
    const smaller = Math.min(...e.shape);
    if (rank > smaller)
      throw new Error(
        `LoRA rank ${rank} is larger than ${e.key}'s smaller side (${smaller} of [${e.shape.join(", ")}]): choose at most ${smaller}`,
      );
  }
}

export class LoraAdapters {
  readonly rank: number;
  readonly alpha: number;
  readonly scaling: number;
  readonly dropout: number;
  /** Checkpoint key of each adapted weight, in order. */
  readonly keys: string[];
  /** A of each key, [rank, in]. */
  readonly a = new Map<string, tf.Variable>();
  /** B of each key, [out, rank]. */
  readonly b = new Map<string, tf.Variable>();
  private dropoutStep = 0;

  constructor(
    private readonly model: HookedModel,
    options: LoraOptions = {},
  ) {
    this.rank = options.rank ?? 8;
    this.alpha = options.alpha ?? 2 * this.rank;
    this.scaling = this.alpha / this.rank;
    this.dropout = options.dropout ?? 0;
    checkLoraOptions(model.arch, model.config, options);
    const shapes = new Map(
      expectedTensors(model.arch, model.config)
        .filter((e) => e.linear)
        .map((e) => [e.key, e.shape]),
    );
    const linear = [...shapes.keys()];
    const modules = options.modules ?? LORA_DEFAULT_MODULES;
    this.keys = options.keys ? [...options.keys] : linear.filter((k) => modules.some((m) => k.endsWith(`.${m}.weight`)));
    for (const key of this.keys)
      if (!linear.includes(key))
        throw new Error(`LoRA target ${key} is not a linear weight of the model (linear weights: ${linear.slice(0, 4).join(", ")}...)`);
    if (this.keys.length === 0) throw new Error(`no linear weight of the model matches the LoRA modules ${modules.join(", ")}`);
    const rng = makeRng(options.seed ?? 0);
    const id = instances++;
    for (const key of this.keys) {
      const [out, inF] = shapes.get(key)!;
      const bound = 1 / Math.sqrt(inF);
      const a = Float32Array.from({ length: this.rank * inF }, () => (2 * rng() - 1) * bound);
      this.a.set(key, tf.variable(tf.tensor2d(a, [this.rank, inF]), true, `lora${id}/${key}/A`));
      this.b.set(key, tf.variable(tf.zeros([out, this.rank]), true, `lora${id}/${key}/B`));
    }
  }

  get variables(): tf.Variable[] {
    return [...this.a.values(), ...this.b.values()];
  }

  /** Set A and B of one key (e.g. to given values in a check). */
  assign(key: string, a: tf.Tensor2D, b: tf.Tensor2D): void {
    this.a.get(key)!.assign(a);
    this.b.get(key)!.assign(b);
  }

  /**
   * Put the adapters into the model's forward pass, as their values are now (attach again after changing
   * them; inside a gradient tape, attach there so that gradients reach A and B); with `training`, their input
   * goes through dropout (a fresh seed each call).
   */
  attach(options: { training?: boolean } = {}): void {
    const adapters: Record<string, LinearAdapter> = {};
    const step = this.dropoutStep++;
    for (const [i, key] of this.keys.entries()) {
      const down = tf.transpose(this.a.get(key)!) as tf.Tensor2D; // A^T [in, rank]
      const up = tf.transpose(this.b.get(key)!) as tf.Tensor2D; // B^T [rank, out]
      const dropout =
        options.training && this.dropout > 0
          ? (x: tf.Tensor2D) => tf.dropout(x, this.dropout, undefined, step * 1009 + i) as tf.Tensor2D
          : undefined;
      adapters[key] = {
        // scaling * B (A dropout(x)), for rows x [rows, in]: [rows, out].
        delta: (rows) => tf.mul(tf.matMul(tf.matMul(dropout ? dropout(rows) : rows, down), up), this.scaling) as tf.Tensor2D,
      };
    }
    this.model.params.adapters = adapters;
  }

  /** Take the adapters out of the forward pass: the model is the frozen reference again. */
  detach(): void {
    this.model.params.adapters = undefined;
  }

  /** scaling * B A of each key, [out, in] row-major (the checkpoint's layout), to add to the stored weight. */
  deltas(): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    for (const key of this.keys) {
      const delta = tf.tidy(() => tf.mul(tf.matMul(this.b.get(key)!, this.a.get(key)!), this.scaling));
      out.set(key, delta.dataSync() as Float32Array);
      delta.dispose();
    }
    return out;
  }

  dispose(): void {
    this.detach();
    tf.dispose(this.variables);
  }
}
