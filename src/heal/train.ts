// DPO training of LoRA adapters with the engine's own forward pass and tfjs gradients: Adam, a linear warmup
// then a cosine decay of the learning rate (the blog's schedule), gradient accumulation, and a seeded order
// of the pairs, so that a run is repeatable.
import * as tf from "@tensorflow/tfjs-core";
import type { HookedModel } from "../hooked-model.ts";
import { makeRng } from "../sampling.ts";
import { answerLogProbs, dpoTerms, pairLogProbs, type PairLogProbs, type PreferencePair } from "./dpo.ts";
import { LoraAdapters, type LoraOptions } from "./lora.ts";

export interface DpoOptions extends LoraOptions {
  /** DPO's beta: how far the policy may move from the reference (default 0.1). */
  beta?: number;
  /** Peak learning rate (the blog: 5e-6 on an 8B model; a small model needs more). */
  learningRate?: number;
  epochs?: number;
  /** Pairs per forward pass. */
  batchSize?: number;
  /** Forward passes whose gradients add up to one optimizer step. */
  gradientAccumulation?: number;
  /** Share of the steps spent warming the learning rate up from 0 (default 0.1). */
  warmupRatio?: number;
  /** Seeds the adapters' initialisation, the order of the pairs and dropout. */
  seed?: number;
  onStep?: (step: DpoStep) => void;
  /** Progress of the reference log-probabilities, computed (pairs done of all) before the first step. */
  onReference?: (done: number, total: number) => void;
}

export interface DpoStep {
  step: number;
  steps: number;
  /** The pass over the pairs this step belongs to, from 1. */
  epoch: number;
  /** Mean DPO loss of the step's pairs. */
  loss: number;
  /**
   * Share of the step's pairs whose chosen answer gains more reward than the rejected one, by more than
   * REWARD_WIN_MARGIN: at the first step the policy is the reference, and float32 rounding is no win.
   */
  rewardAccuracy: number;
  /** Mean reward margin, beta * (chosen - rejected) log-ratio difference. */
  margin: number;
  learningRate: number;
}

/** A reward margin this small is float32 rounding of equal rewards (at step 1, policy = reference), not a win. */
export const REWARD_WIN_MARGIN = 1e-5;

/** Mean loss, reward accuracy and margin of each epoch's steps: what a run did, rather than its last minibatch. */
export function epochMeans(history: readonly DpoStep[]): { epoch: number; loss: number; rewardAccuracy: number; margin: number }[] {
  const epochs = [...new Set(history.map((h) => h.epoch))];
  return epochs.map((epoch) => {
    const steps = history.filter((h) => h.epoch === epoch);
    const mean = (f: (h: DpoStep) => number) => steps.reduce((s, h) => s + f(h), 0) / steps.length;
    return { epoch, loss: mean((h) => h.loss), rewardAccuracy: mean((h) => h.rewardAccuracy), margin: mean((h) => h.margin) };
  });
}

/** One line for people: each epoch's mean loss and reward accuracy. */
export function trainingSummary(history: readonly DpoStep[]): string {
  const means = epochMeans(history);
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  return (
    `${history.length} DPO steps, ${means.length} epoch${means.length === 1 ? "" : "s"}: mean loss by epoch ` +
    `${means.map((m) => m.loss.toFixed(4)).join(", ")}; mean reward accuracy by epoch ${means.map((m) => pct(m.rewardAccuracy)).join(", ")}`
  );
}

export interface DpoResult {
  adapters: LoraAdapters;
  history: DpoStep[];
  /** The frozen reference's log-probabilities of the pairs. */
  reference: PairLogProbs;
}

/** Learning rate at `step` (0-based) of `steps`: linear warmup over `warmup` steps, then cosine decay to 0. */
export function learningRateAt(step: number, steps: number, warmup: number, peak: number): number {
  if (step < warmup) return (peak * (step + 1)) / (warmup + 1);
  const progress = (step - warmup) / Math.max(1, steps - warmup);
  return (peak * (1 + Math.cos(Math.PI * progress))) / 2;
}

/**
 * Train LoRA adapters on `model` with DPO against the model itself, frozen, as the reference. The adapters
 * come back detached (the model computes as before); `attach()` puts them in, `deltas()` gives them for export.
 */
export async function trainDpo(model: HookedModel, pairs: readonly PreferencePair[], options: DpoOptions = {}): Promise<DpoResult> {
  if (pairs.length === 0) throw new Error("trainDpo: no preference pairs");
  const beta = options.beta ?? 0.1;
  const peak = options.learningRate ?? 5e-6;
  const epochs = options.epochs ?? 1;
  const batchSize = options.batchSize ?? 4;
  const accumulation = options.gradientAccumulation ?? 1;
  for (const [name, value] of [
    ["epochs", epochs],
    ["batchSize", batchSize],
    ["gradientAccumulation", accumulation],
  ] as const) {
    if (!Number.isInteger(value) || value <= 0) throw new Error(`trainDpo: ${name} must be a positive integer, got ${value}`);
  }
  const seed = options.seed ?? 0;
  // The reference, a batch at a time, with progress let through between batches.
  const reference: PairLogProbs = { chosen: new Float64Array(pairs.length), rejected: new Float64Array(pairs.length) };
  options.onReference?.(0, pairs.length);
  for (let start = 0; start < pairs.length; start += batchSize) {
    const part = pairLogProbs(model, pairs.slice(start, start + batchSize), batchSize);
    reference.chosen.set(part.chosen, start);
    reference.rejected.set(part.rejected, start);
    options.onReference?.(Math.min(pairs.length, start + batchSize), pairs.length);
    await new Promise((r) => setImmediate(r));
  }
  const adapters = new LoraAdapters(model, { ...options, seed });
  const rng = makeRng(seed + 1);
  const microPerEpoch = Math.ceil(pairs.length / batchSize);
  const stepsPerEpoch = Math.ceil(microPerEpoch / accumulation);
  const steps = stepsPerEpoch * epochs;
  const warmup = Math.floor((options.warmupRatio ?? 0.1) * steps);
  const optimizer = tf.train.adam(peak, 0.9, 0.999, 1e-8);
  const history: DpoStep[] = [];
  try {
    for (let epoch = 0; epoch < epochs; epoch++) {
      const order = [...pairs.keys()];
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(rng() * (i + 1));
        [order[i], order[j]] = [order[j], order[i]];
      }
      for (let s = 0; s < stepsPerEpoch; s++) {
        const stepPairs = order.slice(s * accumulation * batchSize, (s + 1) * accumulation * batchSize);
        let summed: Record<string, tf.Tensor> | undefined;
        let lossSum = 0;
        let wins = 0;
        let marginSum = 0;
        for (let m = 0; m < stepPairs.length; m += batchSize) {
          const part = stepPairs.slice(m, m + batchSize);
          const refChosen = part.map((i) => reference.chosen[i]);
          const refRejected = part.map((i) => reference.rejected[i]);
          const stats: { losses?: Float32Array; chosen?: Float32Array; rejected?: Float32Array } = {};
          const { value, grads } = tf.variableGrads(() => {
            adapters.attach({ training: true });
            const items = [
              ...part.map((i) => ({ prompt: pairs[i].prompt, answer: pairs[i].chosen })),
              ...part.map((i) => ({ prompt: pairs[i].prompt, answer: pairs[i].rejected })),
            ];
            const [chosen, rejected] = tf.split(answerLogProbs(model, items), 2) as tf.Tensor1D[];
            const terms = dpoTerms(chosen, rejected, refChosen, refRejected, beta);
            stats.losses = terms.losses.dataSync() as Float32Array;
            stats.chosen = terms.rewardChosen.dataSync() as Float32Array;
            stats.rejected = terms.rewardRejected.dataSync() as Float32Array;
            // Every pair of the step weighs the same, whichever forward pass it is in.
            return tf.div(tf.sum(terms.losses), stepPairs.length) as tf.Scalar;
          }, adapters.variables);
          value.dispose();
          adapters.detach();
          for (let k = 0; k < part.length; k++) {
            lossSum += stats.losses![k];
            wins += stats.chosen![k] - stats.rejected![k] > REWARD_WIN_MARGIN ? 1 : 0;
            marginSum += stats.chosen![k] - stats.rejected![k];
          }
          if (!summed) summed = grads;
          else {
            const next: Record<string, tf.Tensor> = {};
            for (const name of Object.keys(grads)) next[name] = tf.add(summed[name], grads[name]);
            tf.dispose([...Object.values(summed), ...Object.values(grads)]);
            summed = next;
          }
        }
        const step = epoch * stepsPerEpoch + s;
        // A non-finite loss or gradient would spread through every weight it reaches: stop before applying it.
        const nonFinite = [
          ...(Number.isFinite(lossSum) ? [] : [`the loss is ${lossSum / stepPairs.length}`]),
          ...Object.entries(summed!)
            .filter(([, g]) => tf.tidy(() => tf.all(tf.isFinite(g)).dataSync()[0]) === 0)
            .map(([name]) => `the gradient of ${name} is not finite`),
        ];
        if (nonFinite.length > 0) {
          tf.dispose(Object.values(summed!));
          throw new Error(
            `DPO step ${step + 1} of ${steps}: ${nonFinite.slice(0, 3).join("; ")}; training stopped before it reached the weights ` +
              `(learning rate ${learningRateAt(step, steps, warmup, peak)}, beta ${beta}: lower the learning rate or alpha)`,
          );
        }
        const learningRate = learningRateAt(step, steps, warmup, peak);
        (optimizer as unknown as { learningRate: number }).learningRate = learningRate;
        optimizer.applyGradients(summed as Record<string, tf.Variable>);
        tf.dispose(Object.values(summed!));
        const report = {
          step: step + 1,
          steps,
          epoch: epoch + 1,
          loss: lossSum / stepPairs.length,
          rewardAccuracy: wins / stepPairs.length,
          margin: marginSum / stepPairs.length,
          learningRate,
        };
        history.push(report);
        options.onStep?.(report);
        await new Promise((r) => setImmediate(r)); // let progress output through
      }
    }
  } catch (error) {
    adapters.dispose();
    throw error;
  } finally {
    optimizer.dispose();
    adapters.detach();
  }
  return { adapters, history, reference };
}
