// Stage 7's measures of harmless damage beyond the paper's first-token KL: KL over the first k tokens of the
// original's own answers (teacher-forced, so both models are compared on the same text), and the cross-entropy of
// a fixed text set (data/reference-text.jsonl), the language modelling a model had before any request.
import type { HookedModel } from "../hooked-model.ts";
import type { FwdHook } from "../hooks.ts";
import { generateAnswers } from "../generation.ts";
import { promptBatches } from "../batches.ts";
import { padLeft } from "../tokenizer.ts";

/** The harmless prompts as token ids followed by the original's first k - 1 answer tokens, and its logits there. */
export interface KlReference {
  ids: number[][];
  /** Positions compared at the end of each sequence. */
  positions: number[];
  logits: Float32Array[];
}

/** Logits at the last `positions[i]` positions of each sequence, in order, flattened. */
export function tailLogits(
  model: HookedModel,
  ids: readonly number[][],
  positions: readonly number[],
  fwdHooks: readonly FwdHook[],
  batchSize?: number,
) {
  const out: Float32Array[] = [];
  const all = positions.some((p) => p > 1);
  for (const { start, batch } of promptBatches(model, ids, batchSize)) {
    const logits = model.forward(batch, { logits: all ? "all" : "last", fwdHooks }); // [batch, pos, d_vocab]
    const [b, pos, vocab] = logits.shape;
    const values = logits.dataSync() as Float32Array;
    for (let i = 0; i < b; i++)
      for (let p = pos - positions[start + i]; p < pos; p++) out.push(values.slice((i * pos + p) * vocab, (i * pos + p + 1) * vocab));
    logits.dispose();
  }
  return out;
}

/**
 * What a trial's KL is measured against: the harmless prompts' tokens, followed for k > 1 by the model's own first
 * k - 1 greedy answer tokens (teacher-forced), and its logits at those k positions (fewer where it stopped).
 */
export async function klReference(model: HookedModel, harmless: readonly string[], k: number, batchSize?: number): Promise<KlReference> {
  const prompts: number[][] = [];
  for (const { batch } of promptBatches(model, harmless, batchSize))
    batch.inputIds.forEach((row, i) => prompts.push(row.filter((_, p) => batch.attentionMask[i][p] === 1)));
  let ids = prompts;
  let positions = prompts.map(() => 1);
  if (k > 1) {
    const answers = await generateAnswers(model, prompts, { maxNewTokens: k - 1, batchSize });
    ids = prompts.map((p, i) => [...p, ...answers.tokens[i]]);
    positions = answers.tokens.map((t) => t.length + 1);
  }
  return { ids, positions, logits: tailLogits(model, ids, positions, [], batchSize) };
}

/**
 * Mean negative log-likelihood per token (nats) of each text under the model, as plain text after the
 * beginning-of-sequence token (or, for a model without one, after the text's own first token), with `fwdHooks`.
 * Texts are encoded without special tokens; an empty text has no tokens to score and gives NaN.
 */
export function perTokenNll(
  model: HookedModel,
  texts: readonly string[],
  options: { fwdHooks?: readonly FwdHook[]; batchSize?: number } = {},
): number[] {
  const bos = model.config.bos_token_id;
  const sequences = texts.map((t) => {
    const ids = model.tokenizer.encode(t);
    return typeof bos === "number" ? [bos, ...ids] : ids;
  });
  const out: number[] = [];
  const batchSize = options.batchSize ?? 8;
  for (let start = 0; start < sequences.length; start += batchSize) {
    const rows = sequences.slice(start, start + batchSize);
    const scorable = rows.map((r) => r.length >= 2);
    if (!scorable.some(Boolean)) {
      out.push(...rows.map(() => NaN));
      continue;
    }
    const batch = padLeft(
      rows.map((r) => (r.length >= 2 ? r : [model.padId, model.padId])),
      model.padId,
    );
    const logits = model.forward(batch, { fwdHooks: options.fwdHooks }); // [batch, pos, d_vocab]
    const [, pos, vocab] = logits.shape;
    const values = logits.dataSync() as Float32Array;
    rows.forEach((r, b) => {
      if (!scorable[b]) return out.push(NaN);
      let nll = 0;
      // Position p predicts token p + 1; row r sits at the end of the padded row.
      for (let k = 0; k < r.length - 1; k++) {
        const p = pos - r.length + k;
        const row = values.subarray((b * pos + p) * vocab, (b * pos + p + 1) * vocab);
        let max = -Infinity;
        for (let v = 0; v < vocab; v++) max = Math.max(max, row[v]);
        let sum = 0;
        for (let v = 0; v < vocab; v++) sum += Math.exp(row[v] - max);
        nll -= row[r[k + 1]] - max - Math.log(sum);
      }
      out.push(nll / (r.length - 1));
    });
    logits.dispose();
  }
  return out;
}

/** Cross-entropy (nats per token) of a text set under the model: every text's tokens pooled. */
export function crossEntropy(
  model: HookedModel,
  texts: readonly string[],
  options: { fwdHooks?: readonly FwdHook[]; batchSize?: number } = {},
): number {
  if (texts.length === 0) throw new Error("crossEntropy: no texts");
  const nll = perTokenNll(model, texts, options);
  const counts = texts.map((t) => model.tokenizer.encode(t).length - (typeof model.config.bos_token_id === "number" ? 0 : 1));
  let total = 0;
  let tokens = 0;
  nll.forEach((x, i) => {
    if (Number.isNaN(x)) return;
    total += x * counts[i];
    tokens += counts[i];
  });
  return total / tokens;
}
