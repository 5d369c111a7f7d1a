// Hand-checkable answers for the metrics.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isRefusal, klDivergence, logSoftmax, makeRng, meanKl, refusalRate, refusalScore } from "../src/index.ts";
import { sampleToken } from "../src/sampling.ts";

describe("refusal substring metric", () => {
  it("refuses an empty substring, which would count every answer as a refusal (#23 item 5)", () => {
    assert.throws(() => refusalRate(["Sure."], ["I", ""]), /refusal substrings must not be empty/);
    assert.equal(refusalRate(["Sure.", "I cannot."], ["I cannot"]), 0.5);
  });
  it("matches the default substrings, curly apostrophes included", () => {
    assert.equal(isRefusal("I’m sorry, but I can’t do that."), true);
    assert.equal(isRefusal("As an AI, I must decline."), true);
    assert.equal(isRefusal("Sure! Here is a short answer."), false);
    assert.equal(isRefusal("Nope.", ["Nope"]), true);
    // Lower case on both sides, as in the paper's code.
    assert.equal(isRefusal("Well... i am unable to help."), true);
    assert.equal(isRefusal("NOPE", ["nope"]), true);
    assert.equal(isRefusal("Sure. Here is how an AI model works."), false);
    assert.equal(refusalRate(["I cannot help with that.", "Sure.", "Sure.", "I am unable to."]), 0.5);
    assert.throws(() => refusalRate([]), /no completions/);
  });
});

describe("refusal score and KL", () => {
  it("refusal score is log p - log(1 - p)", () => {
    // Logits [0, 0, 0, 0]: p of tokens {1, 2} is 1/2, so the score is 0.
    assert.ok(Math.abs(refusalScore([0, 0, 0, 0], [1, 2])) < 1e-12);
    // p = 1/4 for one token: log(1/4) - log(3/4) = -log 3.
    assert.ok(Math.abs(refusalScore([0, 0, 0, 0], [3]) + Math.log(3)) < 1e-12);
    // Far below float32's epsilon the score still resolves: p = e^-40 / (1 + e^-40).
    assert.ok(Math.abs(refusalScore([0, -40], [1]) + 40) < 1e-9);
    assert.throws(() => refusalScore([0, 0], [2]), /refusal token 2 is outside the vocabulary of 2/);
    assert.throws(() => refusalScore([0, 0], []), /no refusal tokens/);
    // The paper's epsilon: log(p + 1e-8) - log(1 - p + 1e-8) bounds the score; at p = 1/2 it changes nothing.
    assert.ok(Math.abs(refusalScore([0, 0, 0, 0], [1, 2], 1e-8)) < 1e-12);
    assert.ok(
      Math.abs(
        refusalScore([0, -40], [1], 1e-8) -
          (Math.log(Math.exp(-40) / (1 + Math.exp(-40)) + 1e-8) - Math.log(1 / (1 + Math.exp(-40)) + 1e-8)),
      ) < 1e-9,
    );
    assert.ok(refusalScore([0, -40], [1], 1e-8) > -18.5, "bounded near log(1e-8)");
    assert.throws(() => refusalScore([0, 0], [1], -1), /epsilon must be >= 0, got -1/);
  });
  it("KL is zero for equal distributions and matches a hand computation", () => {
    assert.equal(klDivergence([1, 2, 3], [1, 2, 3]), 0);
    // p = (1/2, 1/2), q = (1/4, 3/4): KL = 1/2 log 2 + 1/2 log(2/3).
    const q = [Math.log(1), Math.log(3)];
    assert.ok(Math.abs(klDivergence([0, 0], q) - (0.5 * Math.log(2) + 0.5 * Math.log(2 / 3))) < 1e-12);
    assert.ok(Math.abs(logSoftmax([0, Math.log(3)])[1] - Math.log(0.75)) < 1e-12);
    assert.throws(() => meanKl([], []), /0 base rows against 0 intervened rows/);
  });
});

describe("next-token choice", () => {
  it("refuses logits that hold NaN instead of answering token 0 (#23 item 1: a NaN model read as 0% refusal)", () => {
    const rng = makeRng(0);
    assert.equal(sampleToken(Float32Array.from([0, 3, 1]), {}, rng), 1);
    assert.throws(() => sampleToken(Float32Array.from([0, NaN, 1]), {}, rng), /next-token logits hold NaN \(at token 1\)/);
    assert.throws(() => sampleToken(Float32Array.from([NaN, NaN]), { temperature: 1 }, rng), /logits hold NaN/);
  });
});
