// The notebooks' exercises: each solution passes its check, each usual mistake gets its hint, and the
// switch chooses between the learner's function and the solution.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkBlogRanking, directionKey, unitVector, type RankingCandidate } from "../src/index.ts";
import {
  checkAblation,
  checkDpoLoss,
  checkKl,
  checkOrthogonalizedWeight,
  checkRefusalDirection,
  checkRefusalScore,
  exercise,
  ExerciseNotWritten,
  SOLUTIONS_SWITCH,
} from "../src/index.ts";
import { SOLUTIONS } from "../src/notebook/solutions.ts";
import { makeRng } from "../src/sampling.ts";

const rng = makeRng(11);
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
    checkRefusalDirection(SOLUTIONS.refusalDirection, a, b);
    assert.throws(() => checkRefusalDirection((x, y) => SOLUTIONS.refusalDirection(y, x), a, b), /Hint: the sign is flipped/);
    assert.throws(
      () =>
        checkRefusalDirection((x, y) => ({ raw: SOLUTIONS.refusalDirection(x, y).raw, unit: SOLUTIONS.refusalDirection(x, y).raw }), a, b),
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
      checkBlogRanking(SOLUTIONS.blogRanking, directions);
      assert.deepEqual(
        SOLUTIONS.blogRanking(
          directions.filter((d) => d.norm > 0).map((d) => ({ key: directionKey(d), hook: d.hook, layer: d.layer, raw: d.raw })),
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
        [(cs) => SOLUTIONS.blogRanking(cs).reverse(), /Hint: largest first/],
        [by((c) => mean(unit(c.raw))), /Hint: take the absolute value of the mean/],
        [
          by(
            (c) => Math.abs(mean(unit(c.raw))),
            (cs) => cs,
          ),
          /Hint: the blog ranks only the resid_pre directions/,
        ],
      ];
      for (const [learner, hint] of mistakes) assert.throws(() => checkBlogRanking(learner, directions), hint);
    },
  );

  it("ablation: the solution passes; the raw direction instead of the unit one, and the sign, are named", () => {
    const raw = vector(16).map((x) => 3 * x);
    const xs = [vector(16), vector(16)];
    checkAblation(SOLUTIONS.ablate, xs, raw);
    assert.throws(() => checkAblation((x) => SOLUTIONS.ablate(x, raw), xs, raw), /Hint: did you project onto the unit vector\?/);
    assert.throws(
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
    checkOrthogonalizedWeight(SOLUTIONS.orthogonalizeWeight, weight, out, inF, r);
    const inputSide = (w: Float32Array, o: number, i: number, u: ArrayLike<number>) => {
      // W - (W r) r^T: transpose, edit the other side, transpose back.
      const t = Float32Array.from({ length: w.length }, (_, k) => w[(k % o) * i + Math.floor(k / o)]);
      const e = SOLUTIONS.orthogonalizeWeight(t, i, o, u);
      return Float32Array.from({ length: w.length }, (_, k) => e[(k % i) * o + Math.floor(k / i)]);
    };
    assert.throws(() => checkOrthogonalizedWeight(inputSide, weight, out, inF, r), /Hint: you subtracted on the input side of the weight/);
  });

  it("KL: the solution passes; swapped arguments and raw logits are named", () => {
    const pairs: [number[], number[]][] = [
      [vector(50), vector(50)],
      [vector(50), vector(50)],
    ];
    checkKl(SOLUTIONS.klDivergence, pairs);
    assert.throws(() => checkKl((p, q) => SOLUTIONS.klDivergence(q, p), pairs), /Hint: the arguments are swapped/);
    assert.throws(() => checkKl((p, q) => Array.from(p).reduce((s, v, k) => s + v * (v - q[k]), 0), pairs), /Hint: those are logits/);
  });

  it("refusal score: the solution passes; log p alone and raw logits are named", () => {
    const rows = [vector(40).map((x) => 4 * x), vector(40).map((x) => 4 * x)];
    const tokens = [3, 17];
    checkRefusalScore(SOLUTIONS.refusalScore, rows, tokens);
    assert.throws(
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
    assert.throws(() => checkRefusalScore((l, t) => t.reduce((s, k) => s + Number(l[k]), 0), rows, tokens), /Hint: those are logits/);
  });

  it("DPO loss: the solution passes; swapped answers, a missing reference and a missing beta are named", () => {
    const policy = { chosen: [-10, -12], rejected: [-14, -9] };
    const reference = { chosen: [-11, -12.5], rejected: [-13, -10] };
    checkDpoLoss(SOLUTIONS.dpoLoss, policy, reference, 0.1);
    assert.throws(
      () => checkDpoLoss((pc, pr, rc, rr, b) => SOLUTIONS.dpoLoss(pr, pc, rr, rc, b), policy, reference, 0.1),
      /Hint: the chosen and rejected answers are swapped/,
    );
    assert.throws(
      () => checkDpoLoss((pc, pr, _rc, _rr, b) => SOLUTIONS.dpoLoss(pc, pr, 0, 0, b), policy, reference, 0.1),
      /Hint: the reference's log-probabilities are missing/,
    );
    assert.throws(
      () => checkDpoLoss((pc, pr, rc, rr) => SOLUTIONS.dpoLoss(pc, pr, rc, rr, 1), policy, reference, 0.1),
      /Hint: beta is missing/,
    );
  });
});
