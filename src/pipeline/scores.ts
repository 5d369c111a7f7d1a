// Scores of the paper's automatic selection (Arditi et al. 2024, appendix C): the refusal score
// log p - log(1 - p), with p the probability of the refusal tokens at the last position, and the
// KL divergence between next-token distributions.
import type { ChatTokenizer } from "../tokenizer.ts";

/** log-softmax of one row, in float64. */
export function logSoftmax(logits: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const logZ = max + Math.log(sum);
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i] - logZ;
  return out;
}

/**
 * log p - log(1 - p) for p the summed probability of `refusalTokens`. The paper's code adds an epsilon inside
 * both logarithms (`log(p + eps) - log(1 - p + eps)`, eps 1e-8), which bounds the score near +-18.4; the
 * default here is none (the exact log-odds, as the reference fixtures compute it).
 */
export function refusalScore(logits: ArrayLike<number>, refusalTokens: readonly number[], epsilon = 0): number {
  if (refusalTokens.length === 0) throw new Error("refusalScore: no refusal tokens");
  if (!(epsilon >= 0)) throw new Error(`refusalScore: epsilon must be >= 0, got ${epsilon}`);
  const logp = logSoftmax(logits);
  let p = 0;
  for (const t of refusalTokens) {
    if (t < 0 || t >= logits.length) throw new Error(`refusal token ${t} is outside the vocabulary of ${logits.length}`);
    p += Math.exp(logp[t]);
  }
  if (epsilon > 0) return Math.log(p + epsilon) - Math.log(Math.max(0, 1 - p) + epsilon);
  // p can be far below float32's epsilon (scores near -30 are common): no clamping beyond float64's range.
  if (p >= 1) return Infinity;
  return Math.log(Math.max(p, Number.MIN_VALUE)) - Math.log1p(-p);
}

/** The paper's epsilon in the refusal score. */
export const PAPER_REFUSAL_EPSILON = 1e-8;

/** The epsilon the paper's code puts inside KL's logarithms (andyrdt/refusal_direction, kl_div_fn). */
export const PAPER_KL_EPSILON = 1e-6;

/**
 * KL(p || q) for next-token distributions given by logits: exact (log-softmax) by default; with `epsilon`, as the
 * paper's code computes it, sum p (log(p + epsilon) - log(q + epsilon)), which bounds what near-zero q costs.
 */
export function klDivergence(logitsP: ArrayLike<number>, logitsQ: ArrayLike<number>, epsilon = 0): number {
  const lp = logSoftmax(logitsP);
  const lq = logSoftmax(logitsQ);
  let kl = 0;
  if (epsilon > 0) {
    for (let i = 0; i < lp.length; i++) {
      const p = Math.exp(lp[i]);
      kl += p * (Math.log(p + epsilon) - Math.log(Math.exp(lq[i]) + epsilon));
    }
  } else for (let i = 0; i < lp.length; i++) kl += Math.exp(lp[i]) * (lp[i] - lq[i]);
  return Math.max(kl, 0);
}

/**
 * The refusal tokens of a model: its family's refusal openings (model.arch.refusalOpenings, or the ones
 * given), each of which must be a single token of its tokenizer.
 */
export function refusalTokensFor(
  model: { tokenizer: ChatTokenizer; arch: { refusalOpenings: readonly string[]; modelType: string } },
  openings: readonly string[] = model.arch.refusalOpenings,
): number[] {
  if (openings.length === 0) throw new Error("refusalTokensFor: no refusal openings were given");
  const ids = new Set<number>();
  for (const text of openings) {
    const encoded = model.tokenizer.encode(text);
    if (encoded.length !== 1) {
      const pieces = encoded.map((id) => JSON.stringify(model.tokenizer.decode([id], { skipSpecialTokens: false }))).join(" + ");
      throw new Error(
        `refusal opening ${JSON.stringify(text)} is ${encoded.length} tokens for this tokenizer (${pieces || "none"}), not one: ` +
          `choose openings that are single tokens, or give token ids (--refusal-tokens)`,
      );
    }
    ids.add(encoded[0]);
  }
  return [...ids];
}
