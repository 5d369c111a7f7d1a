// Stage 8, healing: Direct Preference Optimization (Rafailov et al. 2023) of LoRA adapters, as the blog
// heals its abliterated model. The reference model is the abliterated model itself, frozen: its
// log-probabilities are computed once before training, with the adapters detached.
//
//   loss = -log sigmoid(beta * ((log pi(y_w|x) - log ref(y_w|x)) - (log pi(y_l|x) - log ref(y_l|x))))
//
// where log pi(y|x) sums the log-probabilities of the answer's tokens after the prompt (prompt and padding
// tokens are not scored).
import * as tf from "@tensorflow/tfjs-core";
import type { HookedModel } from "../hooked-model.ts";
import { padLeft } from "../tokenizer.ts";

/** A preference pair as token ids: the prompt (chat template applied), the preferred and the rejected answer. */
export interface PreferencePair {
  prompt: number[];
  chosen: number[];
  rejected: number[];
}

/**
 * log p(answer | prompt), summed over the answer's tokens, for each item: a differentiable [n] tensor (the
 * caller disposes it). Sequences are padded on the left and run as one batch.
 */
export function answerLogProbs(
  model: HookedModel,
  items: readonly { prompt: readonly number[]; answer: readonly number[] }[],
): tf.Tensor1D {
  if (items.length === 0) throw new Error("answerLogProbs: no items");
  for (const [i, { prompt, answer }] of items.entries()) {
    if (prompt.length === 0)
      throw new Error(`answerLogProbs: item ${i} has an empty prompt (the first answer token needs a position to be predicted from)`);
    if (answer.length === 0) throw new Error(`answerLogProbs: item ${i} has an empty answer`);
  }
  const batch = padLeft(
    items.map(({ prompt, answer }) => [...prompt, ...answer]),
    model.padId,
  );
  const length = batch.inputIds[0].length;
  const vocab = model.config.vocab_size;
  // Position t predicts token t + 1: each answer sits at the end of its padded row, so the rows predicting
  // it are the answer's length, ending one before the last. (Slices, not gathers: their gradients exist on every backend.)
  const ids = items.flatMap(({ answer }) => answer);
  const owner = items.flatMap(({ answer }, b) => answer.map(() => b));
  return tf.tidy(() => {
    const logits = model.forward(batch); // [batch, pos, vocab]
    const picked = tf.concat(
      items.map(({ answer }, b) =>
        tf.reshape(tf.slice(logits, [b, length - answer.length - 1, 0], [1, answer.length, vocab]), [answer.length, vocab]),
      ),
    ); // [answer tokens, vocab]
    const chosenLogit = tf.sum(tf.mul(picked, tf.oneHot(tf.tensor1d(ids, "int32"), vocab)), 1); // [answer tokens]
    const logp = tf.sub(chosenLogit, tf.logSumExp(picked, 1, false)); // [answer tokens]
    // Sum each item's tokens: a [items, answer tokens] 0/1 matrix times the column of log-probabilities.
    const membership = new Float32Array(items.length * owner.length);
    owner.forEach((b, j) => (membership[b * owner.length + j] = 1));
    return tf.reshape(tf.matMul(tf.tensor2d(membership, [items.length, owner.length]), tf.reshape(logp, [-1, 1])), [
      items.length,
    ]) as tf.Tensor1D;
  });
}

export interface PairLogProbs {
  chosen: Float64Array;
  rejected: Float64Array;
}

/** The frozen reference's log-probabilities of every pair's answers, computed in batches without gradients. */
export function pairLogProbs(model: HookedModel, pairs: readonly PreferencePair[], batchSize = 8): PairLogProbs {
  const chosen = new Float64Array(pairs.length);
  const rejected = new Float64Array(pairs.length);
  for (let start = 0; start < pairs.length; start += batchSize) {
    const part = pairs.slice(start, start + batchSize);
    const items = [
      ...part.map((p) => ({ prompt: p.prompt, answer: p.chosen })),
      ...part.map((p) => ({ prompt: p.prompt, answer: p.rejected })),
    ];
    const logp = answerLogProbs(model, items);
    const values = logp.dataSync();
    logp.dispose();
    part.forEach((_, i) => {
      chosen[start + i] = values[i];
      rejected[start + i] = values[part.length + i];
    });
  }
  return { chosen, rejected };
}

export interface DpoTerms {
  /** Per pair. */
  losses: tf.Tensor1D;
  /** beta * (log pi - log ref) of the chosen and the rejected answers, per pair. */
  rewardChosen: tf.Tensor1D;
  rewardRejected: tf.Tensor1D;
}

/** The DPO loss of each pair from the policy's (differentiable) and the reference's log-probabilities. */
export function dpoTerms(
  policyChosen: tf.Tensor1D,
  policyRejected: tf.Tensor1D,
  referenceChosen: ArrayLike<number>,
  referenceRejected: ArrayLike<number>,
  beta: number,
): DpoTerms {
  return tf.tidy(() => {
    const rewardChosen = tf.mul(tf.sub(policyChosen, tf.tensor1d(Float32Array.from(referenceChosen))), beta) as tf.Tensor1D;
    const rewardRejected = tf.mul(tf.sub(policyRejected, tf.tensor1d(Float32Array.from(referenceRejected))), beta) as tf.Tensor1D;
    // -log sigmoid(z) = softplus(-z), computed without overflow.
    const losses = tf.softplus(tf.neg(tf.sub(rewardChosen, rewardRejected))) as tf.Tensor1D;
    return { losses, rewardChosen, rewardRejected };
  });
}

/** The DPO loss of one pair from plain numbers (the formula, for checks and exercises). */
export function dpoLoss(
  policyChosen: number,
  policyRejected: number,
  referenceChosen: number,
  referenceRejected: number,
  beta: number,
): number {
  const z = beta * (policyChosen - referenceChosen - (policyRejected - referenceRejected));
  return z > 0 ? Math.log1p(Math.exp(-z)) : -z + Math.log1p(Math.exp(z));
}
