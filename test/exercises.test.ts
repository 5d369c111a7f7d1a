// The notebooks' exercises: each solution passes its check, each usual mistake gets its hint, and the
// switch chooses between the learner's function and the solution.
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { withReveals } from "../tools/notebooks/reveals.ts";
import type { Notebook } from "../tools/notebooks/runner.ts";
import { PACKAGE_ROOT } from "../src/paths.ts";
import { checkBlogRanking, directionKey, unitVector, type RankingCandidate } from "../src/index.ts";
import {
  checkAblation,
  checkDpoLoss,
  checkKl,
  checkOrthogonalizedWeight,
  checkNormPreservingColumns,
  checkOnParetoFront,
  checkRefusalDirection,
  checkRefusalScore,
  checkLeftPadding,
  checkLastTokenMean,
  checkLargestWriteAlong,
  exercise,
  ExerciseNotWritten,
  exerciseSummary,
  lastExerciseResult,
  SOLUTIONS_SWITCH,
  type ExerciseResult,
} from "../src/index.ts";
import { SOLUTIONS } from "../src/notebook/solutions.ts";
import { makeRng } from "../src/sampling.ts";

const rng = makeRng(11);

/** Run a check (it prints and returns nothing) and give its result. */
function resultOf(check: () => void): ExerciseResult {
  const before = lastExerciseResult();
  check();
  const result = lastExerciseResult();
  assert.ok(result && result !== before, "the check recorded no result");
  return result;
}
/** The check passes. */
function passes(check: () => void): void {
  const result = resultOf(check);
  assert.equal(result.status, "passed", result.message);
}
/** The check finds a wrong value, with this hint. */
function hints(check: () => void, hint: RegExp): void {
  const result = resultOf(check);
  assert.equal(result.status, "wrong", result.message);
  assert.match(result.message, hint);
}
const vector = (n: number) => Array.from({ length: n }, () => 2 * rng() - 1);

describe("exercises", () => {
  it("the switch: the learner's function, or with ABLITERATE_SOLUTIONS=1 the solution", () => {
    const learner = () => {
      throw new ExerciseNotWritten("dpoLoss");
    };
    const saved = process.env[SOLUTIONS_SWITCH];
    try {
      delete process.env[SOLUTIONS_SWITCH];
      assert.throws(
        () => exercise("dpoLoss", learner)(0, 0, 0, 0, 0.1),
        /exercise dpoLoss: not written yet; replace the throw with your code \(or run with ABLITERATE_SOLUTIONS=1/,
      );
      process.env[SOLUTIONS_SWITCH] = "1";
      assert.equal(exercise("dpoLoss", learner), SOLUTIONS.dpoLoss);
    } finally {
      if (saved === undefined) delete process.env[SOLUTIONS_SWITCH];
      else process.env[SOLUTIONS_SWITCH] = saved;
    }
  });

  it("difference of means: the solution passes; a flipped sign and a missing normalisation are named", () => {
    const [a, b] = [vector(16), vector(16)];
    passes(() => checkRefusalDirection(SOLUTIONS.refusalDirection, [[a, b]]));
    hints(() => checkRefusalDirection((x, y) => SOLUTIONS.refusalDirection(y, x), [[a, b]]), /Hint: the sign is flipped/);
    hints(
      () =>
        checkRefusalDirection(
          (x, y) => ({ raw: SOLUTIONS.refusalDirection(x, y).raw, unit: SOLUTIONS.refusalDirection(x, y).raw }),
          [[a, b]],
        ),
      /Hint: the vector is not normalised/,
    );
  });

  it(
    "the blog's ranking: the solution passes; the mean of |entries|, raw vectors, the order, the sign and other hook points are " + "named",
    () => {
      const direction = (hook: "resid_pre" | "resid_mid", layer: number, raw: number[]) => {
        const norm = Math.sqrt(raw.reduce((a, x) => a + x * x, 0));
        return { hook, layer, tokenOffset: -1, raw: Float64Array.from(raw), norm, unit: norm > 0 ? unitVector(raw) : undefined };
      };
      const directions = [
        direction("resid_pre", 0, [0, 0, 0, 0]), // the same template token: no direction
        direction("resid_pre", 1, [3, 3, 3, -1]),
        direction("resid_pre", 2, [-4, -4, -4, -4]),
        direction("resid_pre", 3, [10, -10, 10, 0]),
        direction("resid_pre", 4, [0.2, 0.2, 0, 0]),
        direction("resid_mid", 1, [1, 1, 1, 1]),
      ];
      const key = (layer: number) => `blocks.${layer}.hook_resid_pre@-1`;
      passes(() => checkBlogRanking(SOLUTIONS.blogRanking, directions));
      assert.deepEqual(
        SOLUTIONS.blogRanking(
          directions.filter((d) => d.norm > 0).map((d) => ({ key: directionKey(d), hook: d.hook, layer: d.layer, raw: Array.from(d.raw) })),
        ),
        [2, 1, 4, 3].map(key),
        "by hand: |mean of unit entries| 0.5, 0.378, 0.354, 0.144",
      );
      const mean = (xs: ArrayLike<number>) => Array.from(xs).reduce((a, b) => a + b, 0) / xs.length;
      const unit = (raw: ArrayLike<number>) => Array.from(unitVector(raw));
      const pre = (cs: readonly RankingCandidate[]) => cs.filter((c) => c.hook === "resid_pre" && c.layer >= 1);
      const by =
        (score: (c: RankingCandidate) => number, pool: (cs: readonly RankingCandidate[]) => readonly RankingCandidate[] = pre) =>
        (cs: readonly RankingCandidate[]) =>
          [...pool(cs)].sort((a, b) => score(b) - score(a)).map((c) => c.key);
      const mistakes: [(cs: readonly RankingCandidate[]) => string[], RegExp][] = [
        [by((c) => mean(unit(c.raw).map(Math.abs))), /Hint: that is the mean of the absolute values/],
        [by((c) => Math.abs(mean(c.raw))), /Hint: normalise each candidate first/],
        [(cs) => SOLUTIONS.blogRanking([...cs]).reverse(), /Hint: largest first/],
        [by((c) => mean(unit(c.raw))), /Hint: take the absolute value of the mean/],
        [
          by(
            (c) => Math.abs(mean(unit(c.raw))),
            (cs) => cs,
          ),
          /Hint: the blog ranks only the resid_pre directions/,
        ],
      ];
      for (const [learner, hint] of mistakes) hints(() => checkBlogRanking(learner, directions), hint);
    },
  );

  it("ablation: the solution passes; the raw direction instead of the unit one, and the sign, are named", () => {
    const raw = vector(16).map((x) => 3 * x);
    const xs = [vector(16), vector(16)];
    passes(() => checkAblation(SOLUTIONS.ablate, xs, raw));
    hints(() => checkAblation((x) => SOLUTIONS.ablate(x, raw), xs, raw), /Hint: did you project onto the unit vector\?/);
    hints(
      () => checkAblation((x, u) => Array.from(x, (v, k) => v + (v - SOLUTIONS.ablate(x, u)[k])), xs, raw),
      /activation 0: yours differs .* Hint: the sign/,
    );
  });

  it("orthogonalising an [out, in] weight: the solution passes; the input side is named", () => {
    const [out, inF] = [8, 8];
    const weight = Float32Array.from(vector(out * inF));
    const unit = vector(8);
    const norm = Math.hypot(...unit);
    const r = unit.map((x) => x / norm);
    passes(() => checkOrthogonalizedWeight(SOLUTIONS.orthogonalizeWeight, weight, out, inF, r));
    const inputSide = (w: Float32Array, o: number, i: number, u: number[]) => {
      // W - (W r) r^T: transpose, edit the other side, transpose back.
      const t = Float32Array.from({ length: w.length }, (_, k) => w[(k % o) * i + Math.floor(k / o)]);
      const e = SOLUTIONS.orthogonalizeWeight(t, i, o, u);
      return Float32Array.from({ length: w.length }, (_, k) => e[(k % i) * o + Math.floor(k / i)]);
    };
    hints(() => checkOrthogonalizedWeight(inputSide, weight, out, inF, r), /Hint: you subtracted on the input side of the weight/);
  });

  it("the norm-preserving column update (notebook 07): the solution passes; each usual mistake is named", () => {
    const [out, inF] = [12, 10];
    const weight = Float32Array.from(vector(out * inF));
    const u = vector(out);
    const r = u.map((x) => x / Math.hypot(...u));
    const strength = 0.8;
    const check = (learner: (w: number[], r: number[], s: number) => ArrayLike<number>) =>
      checkNormPreservingColumns(learner, weight, out, inF, r, strength);
    passes(() => check(SOLUTIONS.normPreservingColumn));
    const plain = (w: number[], r: number[], s: number) => {
      const a = w.reduce((t, x, i) => t + x * r[i], 0);
      return w.map((x, i) => x - s * a * r[i]);
    };
    const length = (v: ArrayLike<number>) => Math.hypot(...Array.from(v));
    hints(() => check(plain), /column 0: .* Hint: that is the plain edit .* now give it back its length/);
    hints(() => check((w, r, s) => plain(w, r, s).map((x, _, e) => x / length(e))), /Hint: your column has length 1/);
    hints(() => check((w, r) => SOLUTIONS.normPreservingColumn(w, r, 1)), /Hint: that is the full-strength edit/);
    hints(
      () => check((w, r, s) => SOLUTIONS.normPreservingColumn(w, r, -s)),
      /Hint: you added the part along r: subtract strength \(w \. r\) r from w/,
    );
    hints(() => check((w) => w), /Hint: that is the column unchanged/);
    const notDone = resultOf(() =>
      check(() => {
        throw new ExerciseNotWritten("normPreservingColumn");
      }),
    );
    assert.equal(notDone.status, "not done");
    assert.match(notDone.message, /multiply e by \|w\| \/ \|e\|/);
  });

  it("on the Pareto front (notebook 11): the solution passes; five usual mistakes are named", () => {
    // A search's trials without ties: the near misses agree with the answer here, and the hand-made points catch them.
    const trials = [
      [0.9, 0.001],
      [0.5, 0.004],
      [0.1, 0.02],
      [0.6, 0.01],
      [0.0, 0.05],
    ];
    const check = (learner: (points: number[][], i: number) => boolean) => checkOnParetoFront(learner, trials);
    passes(() => check(SOLUTIONS.onParetoFront));
    const dominatedBy = (rule: (q: number[], p: number[]) => boolean) => (points: number[][], i: number) =>
      !points.some((q, j) => j !== i && rule(q, points[i]));
    hints(() => check(dominatedBy((q, p) => q.every((v, k) => v < p[k]))), /hand-made points: .* Hint: a trial tied in one objective/);
    hints(
      () => check(dominatedBy((q, p) => q.every((v, k) => v >= p[k]) && q.some((v, k) => v > p[k]))),
      /Hint: both objectives are minimised/,
    );
    hints(() => check(dominatedBy((q, p) => q.every((v, k) => v <= p[k]))), /Hint: an equal trial does not dominate/);
    hints(
      () => check((points, i) => !points.some((q) => q.every((v, k) => v <= points[i][k]))),
      /Hint: no trial is on your front: do not compare a trial with itself/,
    );
    hints(
      () => check((points, i) => points[i][0] === Math.min(...points.map((q) => q[0]))),
      /Hint: the front is not only the fewest refusals/,
    );
    const notDone = resultOf(() =>
      check(() => {
        throw new ExerciseNotWritten("onParetoFront");
      }),
    );
    assert.equal(notDone.status, "not done");
  });

  it("KL: the solution passes; swapped arguments and raw logits are named", () => {
    const pairs: [number[], number[]][] = [
      [vector(50), vector(50)],
      [vector(50), vector(50)],
    ];
    passes(() => checkKl(SOLUTIONS.klDivergence, pairs));
    hints(() => checkKl((p, q) => SOLUTIONS.klDivergence(q, p), pairs), /Hint: the arguments are swapped/);
    hints(() => checkKl((p, q) => p.reduce((s, v, k) => s + v * (v - q[k]), 0), pairs), /Hint: those are logits/);
  });

  it("refusal score: the solution passes; log p alone and raw logits are named", () => {
    const rows = [vector(40).map((x) => 4 * x), vector(40).map((x) => 4 * x)];
    const tokens = [3, 17];
    passes(() => checkRefusalScore(SOLUTIONS.refusalScore, rows, tokens));
    hints(
      () =>
        checkRefusalScore(
          (l, t) =>
            SOLUTIONS.refusalScore(l, t) +
            Math.log(1 - Math.exp(SOLUTIONS.refusalScore(l, t)) / (1 + Math.exp(SOLUTIONS.refusalScore(l, t)))),
          rows,
          tokens,
        ),
      /Hint: that is log p; the score is the log-odds/,
    );
    hints(() => checkRefusalScore((l, t) => t.reduce((s, k) => s + l[k], 0), rows, tokens), /Hint: those are logits/);
  });

  it("DPO loss: the solution passes; swapped answers, a missing reference and a missing beta are named", () => {
    const policy = { chosen: [-10, -12], rejected: [-14, -9] };
    const reference = { chosen: [-11, -12.5], rejected: [-13, -10] };
    passes(() => checkDpoLoss(SOLUTIONS.dpoLoss, policy, reference, 0.1));
    hints(
      () => checkDpoLoss((pc, pr, rc, rr, b) => SOLUTIONS.dpoLoss(pr, pc, rr, rc, b), policy, reference, 0.1),
      /Hint: the margin has the wrong sign: either the policy and the reference are swapped .* or the chosen and rejected answers are/,
    );
    hints(
      () => checkDpoLoss((pc, pr, _rc, _rr, b) => SOLUTIONS.dpoLoss(pc, pr, 0, 0, b), policy, reference, 0.1),
      /Hint: the reference's log-probabilities are missing/,
    );
    hints(() => checkDpoLoss((pc, pr, rc, rr) => SOLUTIONS.dpoLoss(pc, pr, rc, rr, 1), policy, reference, 0.1), /Hint: beta is missing/);
  });
});

describe("the mistakes students make are named (#27)", () => {
  it("DPO: beta outside the log-sigmoid, on one term, dividing; the reference's answers swapped", () => {
    const policy = { chosen: [-10, -12], rejected: [-14, -9] };
    const reference = { chosen: [-11, -12.5], rejected: [-13, -10] };
    const logSigmoid = (x: number) => -Math.log1p(Math.exp(-x));
    const mistakes: [(pc: number, pr: number, rc: number, rr: number, b: number) => number, RegExp][] = [
      [(pc, pr, rc, rr, b) => -b * logSigmoid(pc - rc - (pr - rr)), /Hint: beta is outside the log-sigmoid/],
      [(pc, pr, rc, rr, b) => -logSigmoid(b * (pc - rc) - (pr - rr)), /Hint: beta multiplies only the chosen log-ratio/],
      [(pc, pr, rc, rr, b) => -logSigmoid((pc - rc - (pr - rr)) / b), /Hint: beta divides the margin/],
      [
        (pc, pr, rc, rr, b) => SOLUTIONS.dpoLoss(pc, pr, rr, rc, b),
        /Hint: the reference's chosen and rejected log-probabilities are swapped/,
      ],
      [(pc, pr, rc, rr, b) => SOLUTIONS.dpoLoss(rc, rr, pc, pr, b), /either the policy and the reference are swapped/],
    ];
    for (const [learner, hint] of mistakes) hints(() => checkDpoLoss(learner, policy, reference, 0.1), hint);
  });

  it("refusal score: the wrong sign, the odds without the log, log10", () => {
    const rows = [vector(40).map((x) => 4 * x), vector(40).map((x) => 4 * x)];
    const tokens = [3, 17];
    const p = (l: number[]) => Math.exp(SOLUTIONS.refusalScore(l, tokens)) / (1 + Math.exp(SOLUTIONS.refusalScore(l, tokens)));
    hints(() => checkRefusalScore((l, t) => -SOLUTIONS.refusalScore(l, t), rows, tokens), /Hint: the sign is flipped/);
    hints(() => checkRefusalScore((l) => p(l) / (1 - p(l)), rows, tokens), /Hint: those are the odds; the score takes their logarithm/);
    hints(() => checkRefusalScore((l) => Math.log10(p(l)) - Math.log10(1 - p(l)), rows, tokens), /Hint: that uses log10/);
  });

  it("KL: probabilities times a difference of logits, and sum P (P - Q)", () => {
    const pairs: [number[], number[]][] = [[vector(50).map((x) => 3 * x), vector(50).map((x) => 3 * x)]];
    const softmax = (l: number[]) => {
      const m = Math.max(...l);
      const e = l.map((v) => Math.exp(v - m));
      const z = e.reduce((a, b) => a + b, 0);
      return e.map((v) => v / z);
    };
    hints(
      () => checkKl((lp, lq) => softmax(lp).reduce((s, v, k) => s + v * (lp[k] - lq[k]), 0), pairs),
      /Hint: the weights are probabilities but the difference is of logits/,
    );
    hints(
      () => checkKl((lp, lq) => softmax(lp).reduce((s, v, k) => s + v * (v - softmax(lq)[k]), 0), pairs),
      /Hint: that is sum P \(P - Q\)/,
    );
  });

  it("ablation (x . r) r - x, the edit r (r^T W) - W, and the ranking without abs() are named; float32 arithmetic passes", () => {
    const raw = vector(16);
    const xs = [vector(16)];
    hints(
      () => checkAblation((x, u) => SOLUTIONS.ablate(x, u).map((v, k) => -v), xs, raw),
      /Hint: that is \(x \. r\) r - x, the negative of the answer/,
    );
    const [out, inF] = [4, 6];
    const weight = Float32Array.from(vector(out * inF));
    const r = Array.from(unitVector(vector(out)));
    hints(
      () => checkOrthogonalizedWeight((w, o, i, u) => SOLUTIONS.orthogonalizeWeight(w, o, i, u).map((v, k) => -v), weight, out, inF, r),
      /Hint: that is r \(r\^T W\) - W, the negative of the answer/,
    );
    // Every mean negative: forgetting abs() gives exactly the reversed order, and the hint names abs(), not the order.
    const negative = [1, 2, 3].map((layer) => {
      const v = [-layer, -1, -1, 0.5];
      const norm = Math.hypot(...v);
      return { hook: "resid_pre" as const, layer, tokenOffset: -1, raw: Float64Array.from(v), norm, unit: unitVector(v) };
    });
    const noAbs = (cs: RankingCandidate[]) =>
      cs
        .filter((c) => c.hook === "resid_pre" && c.layer >= 1)
        .map((c) => ({ key: c.key, score: Array.from(unitVector(c.raw)).reduce((s, x) => s + x, 0) }))
        .sort((x, y) => y.score - x.score)
        .map((c) => c.key);
    hints(() => checkBlogRanking(noAbs, negative), /Hint: take the absolute value of the mean/);
    // A learner working in float32 (Math.fround at every step) is within rounding of the float64 answer.
    const [a, b] = [vector(64).map((x) => 40 * x), vector(64).map((x) => 40 * x)];
    const float32 = (h: number[], l: number[]) => {
      const d = h.map((x, i) => Math.fround(Math.fround(x) - Math.fround(l[i])));
      const norm = Math.fround(Math.sqrt(d.reduce((s, x) => Math.fround(s + Math.fround(x * x)), 0)));
      return { raw: d, unit: d.map((x) => Math.fround(x / norm)) };
    };
    passes(() => checkRefusalDirection(float32, [[Float32Array.from(a), Float32Array.from(b)]]));
  });

  it("an exercise not written yet, or one that throws, is reported with the goal and never throws", () => {
    const logits: [number[], number[]][] = [
      [
        [1, 2],
        [2, 1],
      ],
    ];
    const notWritten = resultOf(() =>
      checkKl(() => {
        throw new ExerciseNotWritten("klDivergence");
      }, logits),
    );
    assert.equal(notWritten.status, "not done");
    assert.match(notWritten.message, /^not done yet\. Hint: turn each row of logits into log-probabilities/);
    const threw = resultOf(() => checkKl((p) => (p as unknown as { nope(): number }).nope(), logits));
    assert.equal(threw.status, "threw");
    assert.match(threw.message, /^your function threw TypeError: .*nope.* Hint: turn each row/);
    const printed: string[] = [];
    const log = console.log;
    console.log = (line: string) => printed.push(line);
    try {
      exerciseSummary();
    } finally {
      console.log = log;
    }
    assert.match(printed.join("\n"), /^exercises: \d+ of \d+ done; still open: .*klDivergence/);
  });

  it("with the solutions switch on, a check says the solution was used", () => {
    const saved = process.env[SOLUTIONS_SWITCH];
    try {
      process.env[SOLUTIONS_SWITCH] = "1";
      const logits: [number[], number[]][] = [
        [
          [1, 2],
          [2, 1],
        ],
      ];
      const result = resultOf(() =>
        checkKl(
          exercise("klDivergence", () => 0),
          logits,
        ),
      );
      assert.equal(result.status, "passed");
      assert.match(result.message, /^solution used: the KL agrees with the package's/);
    } finally {
      if (saved === undefined) delete process.env[SOLUTIONS_SWITCH];
      else process.env[SOLUTIONS_SWITCH] = saved;
    }
  });
});

describe("the exercises of notebooks 02, 03 and 08 (#27 item 4)", () => {
  it("left padding: the solution passes; right padding, an inverted mask and an all-ones mask are named", () => {
    const sequences = [[5, 6, 7], [8], [9, 10]];
    passes(() => checkLeftPadding(SOLUTIONS.leftPad, sequences, 0));
    const right = (s: number[][], pad: number) => {
      const n = Math.max(...s.map((x) => x.length));
      return {
        inputIds: s.map((x) => [...x, ...new Array(n - x.length).fill(pad)]),
        attentionMask: s.map((x) => [...new Array(x.length).fill(1), ...new Array(n - x.length).fill(0)]),
      };
    };
    hints(() => checkLeftPadding(right, sequences, 0), /Hint: those are padded on the right/);
    const inverted = (s: number[][], pad: number) => {
      const { inputIds, attentionMask } = SOLUTIONS.leftPad(s, pad);
      return { inputIds, attentionMask: attentionMask.map((row) => row.map((m) => 1 - m)) };
    };
    hints(() => checkLeftPadding(inverted, sequences, 0), /Hint: the mask is inverted/);
    const ones = (s: number[][], pad: number) => {
      const { inputIds } = SOLUTIONS.leftPad(s, pad);
      return { inputIds, attentionMask: inputIds.map((row) => row.map(() => 1)) };
    };
    hints(() => checkLeftPadding(ones, sequences, 0), /Hint: the mask is all 1s/);
  });

  it("the last-token mean: the solution passes; every position, real positions, position 0 and the sum are named", () => {
    // Three prompts of 3, 1 and 2 tokens, left-padded to 3 positions, d_model 4.
    const mask = [
      [1, 1, 1],
      [0, 0, 1],
      [0, 1, 1],
    ];
    const activations = mask.map((row) => row.map(() => vector(4)));
    const want = [0, 1, 2, 3].map((i) => activations.reduce((s, rows) => s + rows[2][i], 0) / 3);
    passes(() => checkLastTokenMean(SOLUTIONS.lastTokenMean, activations, mask, want));
    const meanOver = (pick: (rows: number[][], b: number) => number[][]) => (acts: number[][][]) => {
      const rows = acts.flatMap((r, b) => pick(r, b));
      return [0, 1, 2, 3].map((i) => rows.reduce((s, r) => s + r[i], 0) / rows.length);
    };
    hints(
      () =>
        checkLastTokenMean(
          meanOver((r) => r),
          activations,
          mask,
          want,
        ),
      /Hint: that averages every position, the padding too/,
    );
    hints(
      () =>
        checkLastTokenMean(
          meanOver((r, b) => r.filter((_, t) => mask[b][t] === 1)),
          activations,
          mask,
          want,
        ),
      /Hint: that averages every real token of each prompt/,
    );
    hints(
      () =>
        checkLastTokenMean(
          meanOver((r) => [r[0]]),
          activations,
          mask,
          want,
        ),
      /Hint: position 0 is padding/,
    );
    hints(
      () => checkLastTokenMean((acts, m) => SOLUTIONS.lastTokenMean(acts, m).map((x) => 3 * x), activations, mask, want),
      /Hint: that is the sum over the batch/,
    );
  });

  it("the largest write along r: the solution passes; no abs(), no |w|, the mean and the raw direction are named", () => {
    const raw = vector(8).map((x) => 5 * x);
    const r = Array.from(unitVector(raw));
    // The largest share is a write pointing against r.
    const writes = [vector(8), r.map((x, i) => -3 * x + 0.01 * i), vector(8)];
    passes(() => checkLargestWriteAlong(SOLUTIONS.largestWriteAlong, writes, raw));
    const dot = (w: number[], u: number[]) => w.reduce((s, x, i) => s + x * u[i], 0);
    const norm = (w: number[]) => Math.hypot(...w);
    hints(
      () => checkLargestWriteAlong((ws, u) => Math.max(...ws.map((w) => dot(w, u) / norm(w))), writes, raw),
      /Hint: take the absolute value/,
    );
    hints(() => checkLargestWriteAlong((ws, u) => Math.max(...ws.map((w) => Math.abs(dot(w, u)))), writes, raw), /Hint: divide by \|w\|/);
    hints(
      () => checkLargestWriteAlong((ws, u) => ws.reduce((s, w) => s + Math.abs(dot(w, u)) / norm(w), 0) / ws.length, writes, raw),
      /Hint: that is the mean/,
    );
    hints(
      () => checkLargestWriteAlong((ws) => Math.max(...ws.map((w) => Math.abs(dot(w, raw)) / norm(w))), writes, raw),
      /Hint: use the unit vector/,
    );
  });
});

describe("each exercise in the notebooks has a hint and a solution to reveal (#27 item 3)", () => {
  it("every notebook's folded hint and solution are those of src/notebook (npm run notebooks -- --format refreshes them)", async () => {
    const dir = join(PACKAGE_ROOT, "notebooks");
    const names = (await readdir(dir)).filter((f) => /^\d\d-.*\.ipynb$/.test(f)).sort();
    let exercises = 0;
    for (const name of names) {
      const notebook = JSON.parse(await readFile(join(dir, name), "utf8")) as Notebook;
      const sources = (nb: Notebook) => nb.cells.map((c) => [c.source].flat().join(""));
      assert.deepEqual(sources(notebook), sources(withReveals(notebook)), `${name}: run npm run notebooks -- --format`);
      const defined = sources(notebook).flatMap((s) => [...s.matchAll(/\bexercise\("(\w+)"/g)].map((m) => m[1]));
      exercises += defined.length;
      for (const exercise of defined)
        assert.ok(
          sources(notebook).some((s) => s.includes("<summary>Solution</summary>") && s.includes(`function ${exercise}(`)),
          `${name}: no solution to reveal for ${exercise}`,
        );
      // Every stage notebook (02 to 11) has an exercise.
      if (/^(0[2-9]|10)-/.test(name)) assert.ok(defined.length > 0, `${name} has no exercise`);
    }
    assert.ok(exercises >= 10, `${exercises} exercises`);
  });
});
