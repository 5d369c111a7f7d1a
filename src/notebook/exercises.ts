// Exercises in the notebooks: the learner writes the core of a stage, a check compares it with the
// package's implementation on real values and names the likely mistake. The solutions live in
// solutions.ts; ABLITERATE_SOLUTIONS=1 makes every exercise use its solution (how `npm run notebooks`, the
// tests and CI execute the notebooks end to end).
import { dpoLoss } from "../heal/dpo.ts";
import { klDivergence, logSoftmax, refusalScore } from "../pipeline/scores.ts";
import { orthogonalizeTensor } from "../pipeline/orthogonalize.ts";
import { projectRowsArray, unitVector } from "../projection.ts";
import { SOLUTIONS, type RankingCandidate } from "./solutions.ts";
import { blogRanking } from "../pipeline/select.ts";
import { directionKey, type Direction } from "../pipeline/directions.ts";

export const SOLUTIONS_SWITCH = "ABLITERATE_SOLUTIONS";

export class ExerciseNotWritten extends Error {
  constructor(name: string) {
    super(`exercise ${name}: not written yet; replace the throw with your code (or run with ${SOLUTIONS_SWITCH}=1 to use the solution)`);
    this.name = "ExerciseNotWritten";
  }
}

/** The learner's function, or with ABLITERATE_SOLUTIONS=1 the solution. */
export function exercise<K extends keyof typeof SOLUTIONS>(name: K, learner: (typeof SOLUTIONS)[K]): (typeof SOLUTIONS)[K] {
  return process.env[SOLUTIONS_SWITCH] === "1" ? SOLUTIONS[name] : learner;
}

/**
 * Check a DPO loss written by the learner against the package's on real log-probabilities (one entry per
 * pair); throws with a hint naming the likely mistake, returns the largest difference when it agrees.
 */
export function checkDpoLoss(
  learner: (policyChosen: number, policyRejected: number, referenceChosen: number, referenceRejected: number, beta: number) => number,
  policy: { chosen: ArrayLike<number>; rejected: ArrayLike<number> },
  reference: { chosen: ArrayLike<number>; rejected: ArrayLike<number> },
  beta: number,
): number {
  let worst = 0;
  for (let i = 0; i < policy.chosen.length; i++) {
    const args = [policy.chosen[i], policy.rejected[i], reference.chosen[i], reference.rejected[i], beta] as const;
    const got = learner(...args);
    const want = dpoLoss(...args);
    const gap = Math.abs(got - want);
    if (gap <= 1e-9 * Math.max(1, Math.abs(want))) {
      worst = Math.max(worst, gap);
      continue;
    }
    const [pc, pr, rc, rr] = args;
    const hints: [number, string][] = [
      [
        dpoLoss(pr, pc, rr, rc, beta),
        "the chosen and rejected answers are swapped: the margin is (chosen log-ratio) - (rejected log-ratio)",
      ],
      [dpoLoss(pc, pr, 0, 0, beta), "the reference's log-probabilities are missing: each log-ratio is log pi(y|x) - log ref(y|x)"],
      [dpoLoss(pc, pr, rc, rr, 1), "beta is missing: the margin is multiplied by beta before the sigmoid"],
      [-dpoLoss(pc, pr, rc, rr, beta), "the sign is flipped: the loss is minus log sigmoid, a positive number"],
      [1 / (1 + Math.exp(-beta * (pc - rc - (pr - rr)))), "that is sigmoid(margin); the loss is -log sigmoid(margin)"],
    ];
    const hint =
      hints.find(([value]) => Math.abs(value - got) <= 1e-9 * Math.max(1, Math.abs(value)))?.[1] ??
      "compare with -log(1 / (1 + exp(-beta * ((pc - rc) - (pr - rr)))))";
    throw new Error(`pair ${i}: your loss is ${got}, the package's ${want}. Hint: ${hint}.`);
  }
  return worst;
}

/** Largest |a - b| over two equal-length arrays (Infinity when the lengths differ or a value is NaN). */
function gap(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (!a || a.length !== b.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= worst)) worst = Number.isNaN(d) ? Infinity : d;
  }
  return worst;
}

/** Throw with the first hint whose wrong answer the learner's matches, else a plain difference. */
function fail(
  what: string,
  difference: number,
  got: ArrayLike<number> | number,
  wrongs: [ArrayLike<number> | number, string][],
  tolerance: number,
): never {
  const near = (x: ArrayLike<number> | number) =>
    typeof x === "number" || typeof got === "number" ? Math.abs(Number(x) - Number(got)) <= tolerance : gap(x, got) <= tolerance;
  const hint = wrongs.find(([wrong]) => near(wrong))?.[1];
  throw new Error(`${what}: yours differs from the package's by ${difference}.${hint ? ` Hint: ${hint}.` : ""}`);
}

/** Notebook 04: the learner's difference of means and unit vector against the package's direction of the same means. */
export function checkRefusalDirection(
  learner: (harmful: ArrayLike<number>, harmless: ArrayLike<number>) => { raw: ArrayLike<number>; unit: ArrayLike<number> },
  harmful: ArrayLike<number>,
  harmless: ArrayLike<number>,
): void {
  const { raw, unit } = learner(harmful, harmless);
  const wantRaw = Array.from(harmful, (x, i) => x - harmless[i]);
  const wantUnit = unitVector(wantRaw);
  const rawGap = gap(raw, wantRaw);
  if (rawGap > 1e-9)
    fail(
      "the difference of means",
      rawGap,
      raw,
      [[wantRaw.map((x) => -x), "the sign is flipped: harmful minus harmless, so that the direction points towards refusal"]],
      1e-9,
    );
  const unitGap = gap(unit, wantUnit);
  const norm = Math.sqrt(wantRaw.reduce((sum, x) => sum + x * x, 0));
  if (unitGap > 1e-9)
    fail(
      "the unit vector",
      unitGap,
      unit,
      [
        [wantRaw, "the vector is not normalised: divide it by its norm"],
        [wantRaw.map((x) => x / norm ** 2), "that divides by the squared norm; divide by the norm"],
      ],
      1e-9,
    );
}

/**
 * Notebook 05: the learner's version of the blog's ranking against `blogRanking`, given every non-zero
 * candidate at the last token (all hook points, all layers), as the learner would have them.
 */
export function checkBlogRanking(learner: (candidates: readonly RankingCandidate[]) => string[], directions: readonly Direction[]): void {
  const candidates: RankingCandidate[] = directions
    .filter((d) => d.norm > 0 && d.tokenOffset === -1)
    .map((d) => ({ key: directionKey(d), hook: d.hook, layer: d.layer, raw: Array.from(d.raw) }));
  const got = learner(candidates);
  const want = blogRanking(directions).map(directionKey);
  const same = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((k, i) => k === b[i]);
  if (Array.isArray(got) && same(got, want)) return;
  const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const unit = (c: RankingCandidate) => Array.from(unitVector(c.raw, c.key));
  const rank = (pool: readonly RankingCandidate[], score: (c: RankingCandidate) => number) =>
    [...pool].sort((a, b) => score(b) - score(a)).map((c) => c.key);
  const pre = candidates.filter((c) => c.hook === "resid_pre" && c.layer >= 1);
  const wrongs: [string[], string][] = [
    [
      rank(pre, (c) => mean(unit(c).map(Math.abs))),
      "that is the mean of the absolute values; the blog takes the absolute value of the mean",
    ],
    [
      rank(pre, (c) => Math.abs(mean(Array.from(c.raw)))),
      "normalise each candidate first: the blog ranks unit vectors, and raw norms grow with depth",
    ],
    [[...want].reverse(), "largest first: sort in decreasing order"],
    [rank(pre, (c) => mean(unit(c))), "take the absolute value of the mean: a large negative mean ranks as high as a large positive one"],
    [rank(candidates, (c) => Math.abs(mean(unit(c)))), "the blog ranks only the resid_pre directions (of layers 1 and later)"],
  ];
  const hint = Array.isArray(got) ? wrongs.find(([wrong]) => same(wrong, got))?.[1] : "return the keys, best first";
  const show = (keys: readonly string[]) => `${keys.slice(0, 4).join(", ")}${keys.length > 4 ? ", ..." : ""} (${keys.length})`;
  throw new Error(
    `the ranking: yours is ${Array.isArray(got) ? show(got) : String(got)}, the blog's ${show(want)}.${hint ? ` Hint: ${hint}.` : ""}`,
  );
}

/** Notebook 05: the learner's directional ablation of real activations against the package's projection. */
export function checkAblation(
  learner: (x: ArrayLike<number>, unit: ArrayLike<number>) => ArrayLike<number>,
  activations: readonly ArrayLike<number>[],
  raw: ArrayLike<number>,
): void {
  const unit = unitVector(raw);
  for (const [i, x] of activations.entries()) {
    const got = learner(x, unit);
    const want = projectRowsArray(Float64Array.from(x), unit);
    const difference = gap(got, want);
    const size = Math.sqrt(Array.from(x).reduce((sum, v) => sum + v * v, 0));
    if (difference <= 1e-6 * Math.max(1, size)) continue;
    let along = 0;
    let alongUnit = 0;
    for (let k = 0; k < x.length; k++) {
      along += x[k] * raw[k];
      alongUnit += x[k] * unit[k];
    }
    fail(
      `activation ${i}`,
      difference,
      got,
      [
        [Array.from(x, (v, k) => v - along * raw[k]), "did you project onto the unit vector? x - (x . r) r needs r of norm 1"],
        [Array.from(x, (v, k) => v + alongUnit * unit[k]), "the sign: subtract the component, x - (x . r) r"],
        [Array.from(x, (v, k) => v - want[k]), "that is the component along r, (x . r) r; ablation removes it: x minus that"],
      ],
      1e-6 * Math.max(1, size),
    );
  }
}

/** Notebook 06: the learner's orthogonalisation of a stored [out, in] weight whose rows write to the residual stream. */
export function checkOrthogonalizedWeight(
  learner: (weight: Float32Array, out: number, inF: number, unit: ArrayLike<number>) => Float32Array,
  weight: Float32Array,
  out: number,
  inF: number,
  unit: ArrayLike<number>,
): void {
  const got = learner(Float32Array.from(weight), out, inF, unit);
  const want = orthogonalizeTensor("weight", Float32Array.from(weight), [out, inF], unitVector(unit));
  const difference = gap(got, want);
  const tolerance = 1e-5 * weight.reduce((m, w) => Math.max(m, Math.abs(w)), 0);
  if (difference <= tolerance) return;
  // The input side, W - (W r) r^T: possible only when the matrix is square, and the usual mistake.
  const wrong =
    out === inF
      ? Float32Array.from(weight, (w, k) => {
          const o = Math.floor(k / inF);
          let wr = 0;
          for (let i = 0; i < inF; i++) wr += weight[o * inF + i] * unit[i];
          return w - wr * unit[k % inF];
        })
      : new Float32Array(0);
  fail(
    "the orthogonalised weight",
    difference,
    got,
    [
      [
        wrong,
        "you subtracted on the input side of the weight: W - (W r) r^T changes what the layer reads; its output (the rows of an " +
          "[out, in] weight) is what writes to the residual stream, so W - r (r^T W)",
      ],
    ],
    tolerance,
  );
}

/** Notebook 08: the learner's KL(p || q) against the package's on real logits. */
export function checkKl(
  learner: (logitsP: ArrayLike<number>, logitsQ: ArrayLike<number>) => number,
  pairs: readonly [ArrayLike<number>, ArrayLike<number>][],
): void {
  for (const [i, [p, q]] of pairs.entries()) {
    const got = learner(p, q);
    const want = klDivergence(p, q);
    const difference = Math.abs(got - want);
    if (difference <= 1e-6 * Math.max(1, want)) continue;
    fail(
      `pair ${i}`,
      difference,
      got,
      [
        [klDivergence(q, p), "the arguments are swapped: KL(original || abliterated) weighs by the original's probabilities"],
        [
          Array.from(p).reduce((s, v, k) => s + v * (v - q[k]), 0),
          "those are logits: turn each row into log-probabilities (log-softmax) first",
        ],
        [-want, "the sign: KL = sum p (log p - log q), which is never negative"],
      ],
      1e-6 * Math.max(1, want),
    );
  }
}

/** Notebook 09: the learner's refusal score against the package's on real last-position logits. */
export function checkRefusalScore(
  learner: (logits: ArrayLike<number>, refusalTokens: readonly number[]) => number,
  rows: readonly ArrayLike<number>[],
  refusalTokens: readonly number[],
): void {
  for (const [i, logits] of rows.entries()) {
    const got = learner(logits, refusalTokens);
    const want = refusalScore(logits, refusalTokens);
    const difference = Math.abs(got - want);
    const tolerance = 1e-6 * Math.max(1, Math.abs(want));
    if (difference <= tolerance) continue;
    const logp = logSoftmax(logits);
    const p = refusalTokens.reduce((s, t) => s + Math.exp(logp[t]), 0);
    fail(
      `prompt ${i}`,
      difference,
      got,
      [
        [Math.log(p), "that is log p; the score is the log-odds, log p - log(1 - p)"],
        [
          Math.log(Math.max(...refusalTokens.map((t) => Math.exp(logp[t])))) -
            Math.log(1 - Math.max(...refusalTokens.map((t) => Math.exp(logp[t])))),
          "p sums the probabilities of every refusal token, not the largest",
        ],
        [refusalTokens.reduce((s, t) => s + Number(logits[t]), 0), "those are logits: p is a probability, from the softmax of the logits"],
        [p, "that is p itself; the score is log p - log(1 - p)"],
      ],
      tolerance,
    );
  }
}
