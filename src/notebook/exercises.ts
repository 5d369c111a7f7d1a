// Exercises in the notebooks: the learner writes the core of a stage, a check compares it with the
// package's implementation on real values and names the likely mistake. A check never throws: it prints one
// line (passed, not done yet, or what differs, with a hint) and returns it, and the notebook goes on with the
// package's own result, so Jupyter's Run All completes with exercises left open. The solutions live in
// solutions.ts; ABLITERATE_SOLUTIONS=1 makes every exercise use its solution (how `npm run notebooks`, the
// tests and CI execute the notebooks end to end).
import { dpoLoss } from "../heal/dpo.ts";
import { klDivergence, logSoftmax, refusalScore } from "../pipeline/scores.ts";
import { orthogonalizeTensor } from "../pipeline/orthogonalize.ts";
import { projectRowsArray, projectRowsNormPreserving, unitVector } from "../projection.ts";
import { SOLUTIONS, type RankingCandidate } from "./solutions.ts";
import { blogRanking } from "../pipeline/select.ts";
import { directionKey, type Direction } from "../pipeline/directions.ts";
import { padLeft } from "../tokenizer.ts";
import { shareAlong } from "../export/verify.ts";
import { paretoFront } from "../search/pareto.ts";

export const SOLUTIONS_SWITCH = "ABLITERATE_SOLUTIONS";
type ExerciseName = keyof typeof SOLUTIONS;

export class ExerciseNotWritten extends Error {
  constructor(name: string) {
    super(`exercise ${name}: not written yet; replace the throw with your code (or run with ${SOLUTIONS_SWITCH}=1 to use the solution)`);
    this.name = "ExerciseNotWritten";
  }
}

/** What to do, said when an exercise is not written yet (and after a hint that matched no known mistake). */
export const EXERCISE_GOALS: Record<ExerciseName, string> = {
  leftPad:
    "find the longest sequence; put (longest - length) pad ids before each sequence, and build its mask the same way: 0 for " +
    "each pad, 1 for each real token",
  lastTokenMean:
    "with left padding every prompt's last token is at the last position: take activations[b][positions - 1] of each " +
    "prompt and average them over the batch",
  largestWriteAlong: "for each write w: |w . r| / |w| (the dot product with the unit vector over the write's norm); return the largest",
  refusalDirection: "raw = harmful - harmless, entry by entry; unit = raw divided by its norm, sqrt(sum of raw[i]^2)",
  blogRanking:
    "keep the resid_pre candidates of layers 1 and later, divide each raw vector by its norm, score it by the absolute value of the " +
    "mean of its entries, sort largest first and return the keys",
  ablate: "compute the dot product a = x . r, then return x - a r (r is already a unit vector)",
  orthogonalizeWeight:
    "the rows of an [out, in] weight write to the residual stream: for each column i, c[i] = sum over o of r[o] W[o][i]; then " +
    "W'[o][i] = W[o][i] - r[o] c[i] (element [o][i] is weight[o * inF + i])",
  normPreservingColumn:
    "a = w . r; e = w - strength a r (the plain edit); then multiply e by |w| / |e|, the column's length before over its length " +
    "after, so that it keeps its length",
  klDivergence: "turn each row of logits into log-probabilities (log-softmax), then sum over tokens of p (log p - log q), p = exp(log p)",
  refusalScore: "p = the sum of softmax(logits)[t] over the refusal tokens t; the score is log p - log(1 - p)",
  onParetoFront:
    "trial i is off the front when some other trial j has points[j][k] <= points[i][k] for every objective k and < for at least " +
    "one; it is on the front when no trial does that",
  dpoLoss: "margin = beta ((policyChosen - referenceChosen) - (policyRejected - referenceRejected)); the loss is -log(sigmoid(margin))",
};

/** Whether the notebooks run with the solutions (ABLITERATE_SOLUTIONS=1). */
const solutionsOn = () => process.env[SOLUTIONS_SWITCH] === "1";

/** The learner's function, or with ABLITERATE_SOLUTIONS=1 the solution. */
export function exercise<K extends ExerciseName>(name: K, learner: (typeof SOLUTIONS)[K]): (typeof SOLUTIONS)[K] {
  return solutionsOn() ? SOLUTIONS[name] : learner;
}

export interface ExerciseResult {
  exercise: ExerciseName;
  /** passed; not done (the learner's function still throws ExerciseNotWritten); wrong (a value differs); threw (another error). */
  status: "passed" | "not done" | "wrong" | "threw";
  /** The line the check printed. */
  message: string;
}

/** A value that differs from the package's, with the hint for the mistake it matches. */
class CheckFailure extends Error {}

/** This kernel's results by exercise, for exerciseSummary(). */
const results = new Map<ExerciseName, ExerciseResult>();

/** The result of the latest check run in this kernel (checks print theirs and return nothing, so a notebook shows only the line). */
export function lastExerciseResult(): ExerciseResult | undefined {
  return latest;
}
let latest: ExerciseResult | undefined;

/** Run a check's body; print what it found. Never throws. */
function runCheck(name: ExerciseName, agrees: string, body: () => void): void {
  let result: ExerciseResult;
  try {
    body();
    result = { exercise: name, status: "passed", message: `${solutionsOn() ? "solution used" : "yours"}: ${agrees}` };
  } catch (error) {
    if (error instanceof ExerciseNotWritten)
      result = { exercise: name, status: "not done", message: `not done yet. Hint: ${EXERCISE_GOALS[name]}.` };
    else if (error instanceof CheckFailure) result = { exercise: name, status: "wrong", message: error.message };
    else
      result = {
        exercise: name,
        status: "threw",
        message:
          `your function threw ${(error as Error)?.name ?? "an error"}: ${(error as Error)?.message ?? String(error)}. ` +
          `Hint: ${EXERCISE_GOALS[name]}.`,
      };
  }
  results.set(name, result);
  latest = result;
  const after = result.status === "passed" ? "" : " (The notebook goes on with the package's own result.)";
  console.log(`${result.status === "passed" ? "PASS" : "OPEN"} exercise ${name}: ${result.message}${after}`);
}

/** Print how many of the exercises checked in this kernel pass, naming the open ones. */
export function exerciseSummary(): void {
  const all = [...results.values()];
  const open = all.filter((r) => r.status !== "passed").map((r) => r.exercise);
  const done = all.length - open.length;
  console.log(
    all.length === 0
      ? "exercises: none checked in this notebook yet"
      : `exercises: ${done} of ${all.length} done${open.length > 0 ? `; still open: ${open.join(", ")}` : ""}`,
  );
}

/**
 * Notebook 12: the learner's DPO loss against the package's on real log-probabilities (one entry per pair).
 */
export function checkDpoLoss(
  learner: (policyChosen: number, policyRejected: number, referenceChosen: number, referenceRejected: number, beta: number) => number,
  policy: { chosen: ArrayLike<number>; rejected: ArrayLike<number> },
  reference: { chosen: ArrayLike<number>; rejected: ArrayLike<number> },
  beta: number,
): void {
  runCheck("dpoLoss", `the DPO loss agrees with the package's on ${policy.chosen.length} pairs`, () => {
    for (let i = 0; i < policy.chosen.length; i++) {
      const args = [policy.chosen[i], policy.rejected[i], reference.chosen[i], reference.rejected[i], beta] as const;
      const got = learner(...args);
      const want = dpoLoss(...args);
      const tolerance = 1e-6 * Math.max(1, Math.abs(want));
      if (Math.abs(got - want) <= tolerance) continue;
      const [pc, pr, rc, rr] = args;
      const margin = (b: number) => b * (pc - rc - (pr - rr));
      const logSigmoid = (x: number) => -Math.log1p(Math.exp(-x));
      fail(
        `pair ${i}`,
        Math.abs(got - want),
        got,
        [
          [
            dpoLoss(pc, pr, rr, rc, beta),
            "the reference's chosen and rejected log-probabilities are swapped: each answer's log-ratio uses its own reference",
          ],
          [
            // Swapping the policy with the reference gives the same number as swapping chosen with rejected.
            dpoLoss(pr, pc, rr, rc, beta),
            "the margin has the wrong sign: either the policy and the reference are swapped (each log-ratio is log pi(y|x) - " +
              "log ref(y|x), the policy first) or the chosen and rejected answers are (the margin is the chosen log-ratio minus " +
              "the rejected one)",
          ],
          [dpoLoss(pc, pr, 0, 0, beta), "the reference's log-probabilities are missing: each log-ratio is log pi(y|x) - log ref(y|x)"],
          [dpoLoss(pc, pr, rc, rr, 1), "beta is missing: the margin is multiplied by beta before the sigmoid"],
          [-beta * logSigmoid(margin(1)), "beta is outside the log-sigmoid: it multiplies the margin inside it"],
          [-logSigmoid(beta * (pc - rc) - (pr - rr)), "beta multiplies only the chosen log-ratio: it multiplies the whole margin"],
          [-logSigmoid(margin(1) / beta), "beta divides the margin: it multiplies it"],
          [-dpoLoss(pc, pr, rc, rr, beta), "the sign is flipped: the loss is minus log sigmoid, a positive number"],
          [1 / (1 + Math.exp(-margin(beta))), "that is sigmoid(margin); the loss is -log sigmoid(margin)"],
        ],
        tolerance,
      );
    }
  });
}

/** Notebook 02: the learner's left padding against the package's padLeft. */
export function checkLeftPadding(
  learner: (sequences: number[][], padId: number) => { inputIds: number[][]; attentionMask: number[][] },
  sequences: readonly (readonly number[])[],
  padId: number,
): void {
  runCheck("leftPad", `the padded ids and the mask agree with the package's on ${sequences.length} prompts`, () => {
    const got = learner(
      sequences.map((s) => [...s]),
      padId,
    );
    const want = padLeft(
      sequences.map((s) => [...s]),
      padId,
    );
    const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
    if (same(got?.inputIds, want.inputIds) && same(got?.attentionMask, want.attentionMask)) return;
    const length = want.inputIds[0].length;
    const rightIds = sequences.map((s) => [...s, ...new Array(length - s.length).fill(padId)]);
    const rightMask = sequences.map((s) => [...new Array(s.length).fill(1), ...new Array(length - s.length).fill(0)]);
    let hint: string | undefined;
    if (same(got?.inputIds, rightIds))
      hint = "those are padded on the right: pad on the left, so that every prompt's last token sits at the last position";
    else if (!same(got?.inputIds, want.inputIds)) hint = "compare your inputIds row by row with the prompts: the pads go before each";
    else if (same(got?.attentionMask, rightMask)) hint = "the ids are right but the mask is padded on the right: its 0s go first too";
    else if (
      same(
        got?.attentionMask,
        want.attentionMask.map((row) => row.map((m) => 1 - m)),
      )
    )
      hint = "the mask is inverted: 1 marks a real token, 0 a pad";
    else if (got?.attentionMask?.every?.((row) => row.every((m) => m === 1)))
      hint = "the mask is all 1s: the model would attend to the pads; mark them with 0";
    throw new CheckFailure(`the padding differs from the package's padLeft.${hint ? ` Hint: ${hint}.` : ""}`);
  });
}

/**
 * Notebook 03: the learner's mean of the last-token activation over a left-padded batch, against `want`, the
 * package's (collectMeanActivations on the same prompts).
 */
export function checkLastTokenMean(
  learner: (activations: number[][][], attentionMask: number[][]) => ArrayLike<number>,
  activations: readonly (readonly (readonly number[])[])[],
  attentionMask: readonly (readonly number[])[],
  want: ArrayLike<number>,
): void {
  runCheck("lastTokenMean", `the mean of the last-token activations agrees with collectMeanActivations`, () => {
    const got = learner(
      activations.map((rows) => rows.map((row) => [...row])),
      attentionMask.map((row) => [...row]),
    );
    const tolerance = 1e-4 * Math.max(1, ...Array.from(want, Math.abs));
    const difference = gap(got, want);
    if (difference <= tolerance) return;
    const batch = activations.length;
    const d = want.length;
    const meanOf = (pick: (b: number) => readonly number[][]) => {
      const out = new Array(d).fill(0);
      let count = 0;
      for (let b = 0; b < batch; b++)
        for (const row of pick(b)) {
          for (let i = 0; i < d; i++) out[i] += row[i];
          count++;
        }
      return out.map((x) => x / count);
    };
    const allPositions = meanOf((b) => activations[b] as number[][]);
    const realPositions = meanOf((b) => activations[b].filter((_, t) => attentionMask[b][t] === 1) as number[][]);
    const firstPosition = meanOf((b) => [activations[b][0] as number[]]);
    const firstReal = meanOf((b) => [activations[b][attentionMask[b].indexOf(1)] as number[]]);
    const sum = Array.from(want, (x) => x * batch);
    fail(
      "the mean",
      difference,
      got,
      [
        [allPositions, "that averages every position, the padding too: the method takes each prompt's last token only"],
        [realPositions, "that averages every real token of each prompt: the method takes each prompt's last token only"],
        [firstPosition, "position 0 is padding for every prompt shorter than the longest: with left padding the last token is at -1"],
        [firstReal, "that is each prompt's first real token; the method takes the last, at position -1"],
        [sum, "that is the sum over the batch: divide by the number of prompts"],
      ],
      tolerance,
    );
  });
}

/** Notebook 08: the learner's largest share of a residual write along r against the package's `shareAlong`. */
export function checkLargestWriteAlong(
  learner: (writes: number[][], unit: number[]) => number,
  writes: readonly ArrayLike<number>[],
  raw: ArrayLike<number>,
): void {
  const unit = unitVector(raw);
  runCheck("largestWriteAlong", `the largest share along the direction agrees with the package's on ${writes.length} writes`, () => {
    const got = learner(writes.map(numbers), numbers(unit));
    const want = Math.max(0, ...writes.map((w) => shareAlong(w, unit)));
    const tolerance = 1e-6 * Math.max(1e-3, want);
    if (Math.abs(got - want) <= tolerance) return;
    const dots = writes.map((w) => Array.from(w).reduce((s, x, i) => s + x * unit[i], 0));
    const norms = writes.map((w) => Math.sqrt(Array.from(w).reduce((s, x) => s + x * x, 0)));
    const shares = dots.map((x, i) => (norms[i] > 0 ? x / norms[i] : 0));
    fail(
      "the largest share",
      Math.abs(got - want),
      got,
      [
        [Math.max(...shares), "take the absolute value: a write pointing against r is as much along it as one pointing with it"],
        [Math.max(...dots.map(Math.abs)), "divide by |w|: the share of the write along r, not the size of its component"],
        [shares.reduce((s, x) => s + Math.abs(x), 0) / shares.length, "that is the mean; the check wants the largest"],
        [
          Math.max(...writes.map((w, i) => (norms[i] > 0 ? Math.abs(Array.from(w).reduce((s, x, k) => s + x * raw[k], 0)) / norms[i] : 0))),
          "use the unit vector: the raw direction's length scales the dot product",
        ],
      ],
      tolerance,
    );
  });
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

/** Fail with the first hint whose wrong answer the learner's matches, else a plain difference. */
function fail(
  what: string,
  difference: number,
  got: ArrayLike<number> | number,
  wrongs: [ArrayLike<number> | number, string][],
  tolerance: number,
): never {
  if (typeof got !== "number" && !(got && typeof got.length === "number"))
    throw new CheckFailure(`${what}: your function returned ${String(got)}, not ${wrongs.length ? "numbers" : "a value"}`);
  const near = (x: ArrayLike<number> | number) =>
    typeof x === "number" || typeof got === "number" ? Math.abs(Number(x) - Number(got)) <= tolerance : gap(x, got) <= tolerance;
  const hint = wrongs.find(([wrong]) => near(wrong))?.[1];
  throw new CheckFailure(`${what}: yours differs from the package's by ${difference}.${hint ? ` Hint: ${hint}.` : ""}`);
}

/** A learner's input: plain numbers, so that `.map` and the other array methods work on it. */
const numbers = (xs: ArrayLike<number>): number[] => Array.from(xs);

/**
 * Notebook 04: the learner's difference of means and unit vector against the package's direction of the same
 * means, for each (harmful, harmless) pair of mean activations.
 */
export function checkRefusalDirection(
  learner: (harmful: number[], harmless: number[]) => { raw: ArrayLike<number>; unit: ArrayLike<number> },
  means: readonly (readonly [ArrayLike<number>, ArrayLike<number>])[],
): void {
  runCheck("refusalDirection", `the difference of means and unit vector agree with the package's on ${means.length} hook points`, () => {
    for (const [i, [harmful, harmless]] of means.entries()) {
      const { raw, unit } = learner(numbers(harmful), numbers(harmless));
      const wantRaw = Array.from(harmful, (x, k) => x - harmless[k]);
      const wantUnit = unitVector(wantRaw);
      const size = Math.sqrt(wantRaw.reduce((sum, x) => sum + x * x, 0));
      // float32 means: a learner's arithmetic in float32 is within a few ulps of the package's float64.
      const rawTolerance = 1e-6 * Math.max(1, ...wantRaw.map(Math.abs));
      const rawGap = gap(raw, wantRaw);
      if (rawGap > rawTolerance)
        fail(
          `the difference of means (hook point ${i})`,
          rawGap,
          raw,
          [
            [wantRaw.map((x) => -x), "the sign is flipped: harmful minus harmless, so that the direction points towards refusal"],
            [Array.from(harmful, (x, k) => x + harmless[k]), "that is the sum; the direction is the difference, harmful minus harmless"],
          ],
          rawTolerance,
        );
      const unitGap = gap(unit, wantUnit);
      if (unitGap > 1e-6)
        fail(
          `the unit vector (hook point ${i})`,
          unitGap,
          unit,
          [
            [wantRaw, "the vector is not normalised: divide it by its norm"],
            [wantRaw.map((x) => x / size ** 2), "that divides by the squared norm; divide by the norm"],
            [
              wantRaw.map((x) => x / wantRaw.reduce((a, b) => a + Math.abs(b), 0)),
              "that divides by the sum of |entries|; divide by the norm",
            ],
          ],
          1e-6,
        );
    }
  });
}

/**
 * Notebook 05: the learner's version of the blog's ranking against `blogRanking`, given every non-zero
 * candidate at the last token (all hook points, all layers), as the learner would have them.
 */
export function checkBlogRanking(learner: (candidates: RankingCandidate[]) => string[], directions: readonly Direction[]): void {
  const candidates: RankingCandidate[] = directions
    .filter((d) => d.norm > 0 && d.tokenOffset === -1)
    .map((d) => ({ key: directionKey(d), hook: d.hook, layer: d.layer, raw: Array.from(d.raw) }));
  const want = blogRanking(directions).map(directionKey);
  runCheck("blogRanking", `the ranking agrees with the blog's: ${want.slice(0, 3).join(", ")}, ...`, () => {
    const got = learner(candidates.map((c) => ({ ...c, raw: Array.from(c.raw) })));
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
      [rank(pre, (c) => mean(unit(c))), "take the absolute value of the mean: a large negative mean ranks as high as a large positive one"],
      [[...want].reverse(), "largest first: sort in decreasing order"],
      [rank(candidates, (c) => Math.abs(mean(unit(c)))), "the blog ranks only the resid_pre directions (of layers 1 and later)"],
      [
        rank(
          candidates.filter((c) => c.hook === "resid_pre"),
          (c) => Math.abs(mean(unit(c))),
        ),
        "layer 0's resid_pre is the embedding of the same template token for every prompt: start at layer 1",
      ],
    ];
    const hint = Array.isArray(got) ? wrongs.find(([wrong]) => same(wrong, got))?.[1] : "return the keys, best first";
    const show = (keys: readonly string[]) => `${keys.slice(0, 4).join(", ")}${keys.length > 4 ? ", ..." : ""} (${keys.length})`;
    throw new CheckFailure(
      `the ranking: yours is ${Array.isArray(got) ? show(got) : String(got)}, the blog's ${show(want)}.${hint ? ` Hint: ${hint}.` : ""}`,
    );
  });
}

/** Notebook 05: the learner's directional ablation of real activations against the package's projection. */
export function checkAblation(
  learner: (x: number[], unit: number[]) => ArrayLike<number>,
  activations: readonly ArrayLike<number>[],
  raw: ArrayLike<number>,
): void {
  const unit = unitVector(raw);
  runCheck("ablate", `the ablation agrees with the package's on ${activations.length} activations`, () => {
    for (const [i, x] of activations.entries()) {
      const got = learner(numbers(x), numbers(unit));
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
          [Array.from(x, (v, k) => alongUnit * unit[k] - v), "that is (x . r) r - x, the negative of the answer: x - (x . r) r"],
        ],
        1e-6 * Math.max(1, size),
      );
    }
  });
}

/** Notebook 06: the learner's orthogonalisation of a stored [out, in] weight whose rows write to the residual stream. */
export function checkOrthogonalizedWeight(
  learner: (weight: Float32Array, out: number, inF: number, unit: number[]) => ArrayLike<number>,
  weight: Float32Array,
  out: number,
  inF: number,
  unit: ArrayLike<number>,
): void {
  runCheck("orthogonalizeWeight", `the edit of a [${out}, ${inF}] weight agrees with the package's`, () => {
    const got = learner(Float32Array.from(weight), out, inF, numbers(unit));
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
        [Float32Array.from(want, (w) => -w), "that is r (r^T W) - W, the negative of the answer: W - r (r^T W)"],
        [Float32Array.from(want, (w, k) => weight[k] - w), "that is r (r^T W), the part to remove: subtract it from W"],
      ],
      tolerance,
    );
  });
}

/**
 * Notebook 07: the learner's norm-preserving column update against the package's on columns of a real o_proj
 * (stored [d_model, in]: column j is what input j writes to the residual stream).
 */
export function checkNormPreservingColumns(
  learner: (column: number[], unit: number[], strength: number) => ArrayLike<number>,
  weight: Float32Array,
  out: number,
  inF: number,
  unit: ArrayLike<number>,
  strength: number,
  columns = 8,
): void {
  runCheck(
    "normPreservingColumn",
    `the norm-preserving update of ${columns} columns (strength ${strength}) agrees with the package's`,
    () => {
      const r = unitVector(unit);
      for (let j = 0; j < Math.min(columns, inF); j++) {
        const column = Float64Array.from({ length: out }, (_, o) => weight[o * inF + j]);
        const got = learner(numbers(column), numbers(r), strength);
        const want = projectRowsNormPreserving(column, r, strength);
        const length = Math.sqrt(column.reduce((s, w) => s + w * w, 0));
        const tolerance = 1e-6 * length;
        const difference = gap(got, want);
        if (difference <= tolerance) continue;
        const along = column.reduce((s, w, i) => s + w * r[i], 0);
        const plain = projectRowsArray(column, r, strength);
        const plainLength = Math.sqrt(plain.reduce((s, x) => s + x * x, 0));
        const flipped = column.map((w, i) => w + strength * along * r[i]);
        const flippedLength = Math.sqrt(flipped.reduce((s, x) => s + x * x, 0));
        fail(
          `column ${j}`,
          difference,
          got,
          [
            [
              plain,
              "that is the plain edit w - strength (w . r) r: now give it back its length, multiply by |w| / |w - strength (w . r) r|",
            ],
            [plain.map((x) => x / plainLength), "your column has length 1: rescale to the column's own length |w|, not to a unit vector"],
            [
              projectRowsNormPreserving(column, r, 1),
              "that is the full-strength edit: multiply the removed part (w . r) r by the strength",
            ],
            [flipped.map((x) => (x * length) / flippedLength), "you added the part along r: subtract strength (w . r) r from w"],
            [Float64Array.from(column), "that is the column unchanged: subtract strength (w . r) r from it before rescaling"],
          ],
          tolerance,
        );
      }
    },
  );
}

/**
 * Notebook 11: the learner's on-the-front test for every trial of a search (refusal, KL), and for a few hand-made
 * points with ties and duplicates that a near miss gets wrong, against paretoFront.
 */
export function checkOnParetoFront(learner: (points: number[][], index: number) => boolean, trials: readonly (readonly number[])[]): void {
  runCheck("onParetoFront", `your verdicts agree with paretoFront on ${trials.length} trials and the hand-made ties`, () => {
    // Hand-made: a tie in the first objective, a duplicate pair (both on the front), a point worse in one only.
    const tricky = [
      [0.5, 0.2],
      [0.5, 0.1],
      [0.2, 0.3],
      [0.2, 0.3],
      [0.9, 0.0],
      [0.9, 0.05],
    ];
    for (const [name, points] of [
      ["the search's trials", trials.map((t) => Array.from(t))],
      ["the hand-made points", tricky],
    ] as const) {
      const front = new Set(paretoFront(points));
      const want = points.map((_, i) => front.has(i));
      const got = points.map((_, i) =>
        learner(
          points.map((p) => [...p]),
          i,
        ),
      );
      const wrong = got.findIndex((v, i) => v !== want[i]);
      if (wrong < 0) continue;
      const verdicts = (rule: (p: number[], q: number[]) => boolean) => points.map((p, i) => !points.some((q, j) => j !== i && rule(q, p)));
      const mistakes: [boolean[], string][] = [
        [
          verdicts((q, p) => q.every((v, k) => v < p[k])),
          "a trial tied in one objective and worse in the other is dominated: use <= in every objective and < in at least one, " +
            "not < in all",
        ],
        [
          verdicts((q, p) => q.every((v, k) => v >= p[k]) && q.some((v, k) => v > p[k])),
          "both objectives are minimised (fewer refusals, less KL): a trial is beaten by one with smaller values, not larger",
        ],
        [
          verdicts((q, p) => q.every((v, k) => v <= p[k])),
          "an equal trial does not dominate: two trials with the same values are both on the front (ask for < in at least one objective)",
        ],
        [points.map(() => false), "no trial is on your front: do not compare a trial with itself (skip j === i)"],
        [
          points.map((p) => p[0] === Math.min(...points.map((q) => q[0]))),
          "the front is not only the fewest refusals: a trial with more refusals is on it when its KL is lower than every " +
            "trial's with fewer",
        ],
      ];
      const hint = mistakes.find(([v]) => v.every((x, i) => x === got[i]))?.[1];
      throw new CheckFailure(
        `${name}: point ${wrong} [${points[wrong].join(", ")}] is ${want[wrong] ? "on" : "off"} the front, your function says ` +
          `${got[wrong] ? "on" : "off"}.${hint ? ` Hint: ${hint}.` : ""}`,
      );
    }
  });
}

/** Notebook 09: the learner's KL(p || q) against the package's on real logits. */
export function checkKl(
  learner: (logitsP: number[], logitsQ: number[]) => number,
  pairs: readonly (readonly [ArrayLike<number>, ArrayLike<number>])[],
): void {
  runCheck("klDivergence", `the KL agrees with the package's on ${pairs.length} pairs of logit rows`, () => {
    for (const [i, [p, q]] of pairs.entries()) {
      const got = learner(numbers(p), numbers(q));
      const want = klDivergence(p, q);
      const difference = Math.abs(got - want);
      if (difference <= 1e-6 * Math.max(1, want)) continue;
      const [lp, lq] = [logSoftmax(p), logSoftmax(q)];
      const softmax = (l: ArrayLike<number>) => Array.from(logSoftmax(l), Math.exp);
      const [sp, sq] = [softmax(p), softmax(q)];
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
          [
            sp.reduce((s, v, k) => s + v * (p[k] - q[k]), 0),
            "the weights are probabilities but the difference is of logits: use log p - log q (log-softmax of each row)",
          ],
          [sp.reduce((s, v, k) => s + v * (v - sq[k]), 0), "that is sum P (P - Q) of probabilities; KL takes their logarithms"],
          [
            Array.from(lp).reduce((s, v, k) => s + Math.exp(v) * (v - lq[k]), 0) / Math.LN10,
            "that uses log10; KL uses the natural logarithm",
          ],
          [-want, "the sign: KL = sum p (log p - log q), which is never negative"],
        ],
        1e-6 * Math.max(1, want),
      );
    }
  });
}

/** Notebook 10: the learner's refusal score against the package's on real last-position logits. */
export function checkRefusalScore(
  learner: (logits: number[], refusalTokens: number[]) => number,
  rows: readonly ArrayLike<number>[],
  refusalTokens: readonly number[],
): void {
  runCheck("refusalScore", `the refusal score agrees with the package's on ${rows.length} prompts`, () => {
    for (const [i, logits] of rows.entries()) {
      const got = learner(numbers(logits), [...refusalTokens]);
      const want = refusalScore(logits, refusalTokens);
      const difference = Math.abs(got - want);
      const tolerance = 1e-6 * Math.max(1, Math.abs(want));
      if (difference <= tolerance) continue;
      const logp = logSoftmax(logits);
      const p = refusalTokens.reduce((s, t) => s + Math.exp(logp[t]), 0);
      const largest = Math.max(...refusalTokens.map((t) => Math.exp(logp[t])));
      fail(
        `prompt ${i}`,
        difference,
        got,
        [
          [Math.log(p), "that is log p; the score is the log-odds, log p - log(1 - p)"],
          [-want, "the sign is flipped: log p - log(1 - p), positive when refusal is likely"],
          [p / (1 - p), "those are the odds; the score takes their logarithm, log p - log(1 - p)"],
          [Math.log10(p) - Math.log10(1 - p), "that uses log10; the score uses the natural logarithm"],
          [Math.log(largest) - Math.log(1 - largest), "p sums the probabilities of every refusal token, not the largest"],
          [
            refusalTokens.reduce((s, t) => s + Number(logits[t]), 0),
            "those are logits: p is a probability, from the softmax of the logits",
          ],
          [p, "that is p itself; the score is log p - log(1 - p)"],
        ],
        tolerance,
      );
    }
  });
}
