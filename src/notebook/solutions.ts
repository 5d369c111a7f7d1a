// Solutions of the notebooks' exercises, out of sight of the learner (see exercises.ts). Each is written as a
// learner would, from the formula, not by calling the package.

/** A candidate direction as the ranking exercise gives it: its key, hook point, layer and raw difference of means. */
export interface RankingCandidate {
  key: string;
  hook: string;
  layer: number;
  raw: number[];
}

export const SOLUTIONS = {
  /**
   * Notebook 02: pad token sequences on the left to the longest, with the attention mask (1 on real tokens,
   * 0 on padding).
   */
  leftPad(sequences: number[][], padId: number): { inputIds: number[][]; attentionMask: number[][] } {
    const length = Math.max(...sequences.map((s) => s.length));
    return {
      inputIds: sequences.map((s) => [...new Array(length - s.length).fill(padId), ...s]),
      attentionMask: sequences.map((s) => [...new Array(length - s.length).fill(0), ...new Array(s.length).fill(1)]),
    };
  },

  /**
   * Notebook 03: the mean over a left-padded batch of each prompt's last-token activation, from the
   * activations [batch][position][d_model] and the attention mask [batch][position].
   */
  lastTokenMean(activations: number[][][], attentionMask: number[][]): number[] {
    const d = activations[0][0].length;
    const mean = new Array(d).fill(0);
    for (const rows of activations) {
      const last = rows[rows.length - 1]; // left padding: every prompt ends at the last position
      for (let i = 0; i < d; i++) mean[i] += last[i] / activations.length;
    }
    return mean;
  },

  /** Notebook 08: the largest share of a residual write along the unit vector r, max over writes of |r . w| / |w|. */
  largestWriteAlong(writes: number[][], unit: number[]): number {
    let largest = 0;
    for (const w of writes) {
      const along = w.reduce((s, x, i) => s + x * unit[i], 0);
      const norm = Math.sqrt(w.reduce((s, x) => s + x * x, 0));
      if (norm > 0) largest = Math.max(largest, Math.abs(along) / norm);
    }
    return largest;
  },

  /** Notebook 04: the difference of means and its unit vector. */
  refusalDirection(harmfulMean: number[], harmlessMean: number[]): { raw: number[]; unit: number[] } {
    const raw = Array.from(harmfulMean, (x, i) => x - harmlessMean[i]);
    const norm = Math.sqrt(raw.reduce((s, x) => s + x * x, 0));
    return { raw, unit: raw.map((x) => x / norm) };
  },

  /**
   * Notebook 05: the blog's ranking. Keep the resid_pre candidates of layers 1 and later, normalise each, and
   * sort by the absolute value of the mean of its entries, largest first; return their keys.
   */
  blogRanking(candidates: RankingCandidate[]): string[] {
    const score = (raw: ArrayLike<number>) => {
      const norm = Math.sqrt(Array.from(raw).reduce((s, x) => s + x * x, 0));
      return Math.abs(Array.from(raw).reduce((s, x) => s + x / norm, 0) / raw.length);
    };
    return candidates
      .filter((c) => c.hook === "resid_pre" && c.layer >= 1)
      .map((c) => ({ key: c.key, score: score(c.raw) }))
      .sort((a, b) => b.score - a.score)
      .map((c) => c.key);
  },

  /** Notebook 05: directional ablation of one activation, x - (x . r) r with r a unit vector. */
  ablate(x: number[], unit: number[]): number[] {
    let along = 0;
    for (let i = 0; i < x.length; i++) along += x[i] * unit[i];
    return Array.from(x, (v, i) => v - along * unit[i]);
  },

  /**
   * Notebook 07: grimjim's norm-preserving edit of one column w of o_proj or down_proj (what it writes to the
   * residual stream): remove the part along r with strength lambda, then give the result w's own length back.
   */
  normPreservingColumn(column: number[], unit: number[], strength: number): number[] {
    const along = column.reduce((s, w, i) => s + w * unit[i], 0); // w . r
    const edited = column.map((w, i) => w - strength * along * unit[i]);
    const length = (v: number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    return edited.map((x) => (x * length(column)) / length(edited));
  },

  /**
   * Notebook 06: orthogonalise a weight stored as Hugging Face stores it, [out, in] row-major, whose output
   * side (its rows) writes to the residual stream: W - r (r^T W).
   */
  orthogonalizeWeight(weight: Float32Array, out: number, inF: number, unit: number[]): Float32Array {
    const coefficients = new Float64Array(inF); // r^T W, one per column
    for (let o = 0; o < out; o++) for (let i = 0; i < inF; i++) coefficients[i] += unit[o] * weight[o * inF + i];
    return weight.map((w, k) => w - unit[Math.floor(k / inF)] * coefficients[k % inF]);
  },

  /** Notebook 09: KL(p || q) of the next-token distributions given by two rows of logits. */
  klDivergence(logitsP: number[], logitsQ: number[]): number {
    const logSoftmax = (l: ArrayLike<number>) => {
      const max = Array.from(l).reduce((m, v) => Math.max(m, v), -Infinity);
      const z = Math.log(Array.from(l).reduce((s, v) => s + Math.exp(v - max), 0));
      return Array.from(l, (v) => v - max - z);
    };
    const [lp, lq] = [logSoftmax(logitsP), logSoftmax(logitsQ)];
    return lp.reduce((s, v, i) => s + Math.exp(v) * (v - lq[i]), 0);
  },

  /** Notebook 10: the paper's refusal score, log p - log(1 - p), p the probability of the refusal tokens. */
  refusalScore(logits: number[], refusalTokens: number[]): number {
    const max = Array.from(logits).reduce((m, v) => Math.max(m, v), -Infinity);
    const z = Array.from(logits).reduce((s, v) => s + Math.exp(v - max), 0);
    const p = refusalTokens.reduce((s, t) => s + Math.exp(logits[t] - max) / z, 0);
    return Math.log(p) - Math.log(1 - p);
  },

  /**
   * Notebook 11: whether trial `index` is on the Pareto front of points whose every coordinate is minimised: no
   * other point is at least as good in every coordinate and better in one.
   */
  onParetoFront(points: number[][], index: number): boolean {
    const p = points[index];
    return !points.some((q, j) => j !== index && q.every((v, k) => v <= p[k]) && q.some((v, k) => v < p[k]));
  },

  /** Notebook 12: the DPO loss of one pair, -log sigmoid(beta * (chosen log-ratio - rejected log-ratio)). */
  dpoLoss(policyChosen: number, policyRejected: number, referenceChosen: number, referenceRejected: number, beta: number): number {
    const margin = beta * (policyChosen - referenceChosen - (policyRejected - referenceRejected));
    return Math.log(1 + Math.exp(-margin));
  },
};
