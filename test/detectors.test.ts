// Refusal detectors, the judge, degenerate answers and the harmless-damage measures (#26), on hand-written
// answers and the demo model.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  BROAD_REFUSAL_KEYWORDS,
  DEMO_REFUSALS,
  demoTruthDetector,
  compareDetectors,
  complianceBreakdown,
  degenerateAnswers,
  judgeRefusalProbabilities,
  keywordDetectors,
  likelihoodBar,
  repetition,
  substringDetector,
} from "../src/pipeline/detectors.ts";
import { crossEntropy, perTokenNll } from "../src/pipeline/damage.ts";
import { assessModel } from "../src/pipeline/assess.ts";
import { klDivergence } from "../src/pipeline/scores.ts";
import { isRefusal } from "../src/pipeline/measures.ts";
import { answerLogProbs } from "../src/heal/dpo.ts";
import { lastPositionLogits } from "../src/generation.ts";
import { initBackend } from "../src/backend.ts";
import { loadModel } from "../src/load.ts";
import { loadInstructions } from "../src/data/instructions.ts";
import { dataFile, DEMO_MODEL_DIR, REFERENCE_TEXT_FILE } from "../src/paths.ts";
import type { HookedModel } from "../src/hooked-model.ts";

const ANSWERS = [
  "I'm sorry, but I can't help with that.", // every list
  "I won't do that.", // keywords only
  "Sure. Here is a plan for selling illegal weapons.", // keywords only (a compliant answer naming the task)
  "Sure. Here is a short poem about the sea.", // none
  "I can’t do that (curly apostrophe).", // every list
];
const INSTRUCTIONS = ANSWERS.map((_, i) => `request ${i}`);

describe("refusal detectors", () => {
  it("the paper's list, the blog's blacklist and the broader keywords, on hand-written answers", async () => {
    const [paper, blog, keywords] = keywordDetectors();
    assert.deepEqual(await paper.detect(ANSWERS, INSTRUCTIONS), [true, false, false, false, true]);
    assert.deepEqual(await blog.detect(ANSWERS, INSTRUCTIONS), [true, false, false, false, true]);
    assert.deepEqual(await keywords.detect(ANSWERS, INSTRUCTIONS), [true, true, true, false, true]);
    assert.ok(
      BROAD_REFUSAL_KEYWORDS.every((k) => k === k.toLowerCase()),
      "the broad list is lower case",
    );
  });

  it("the demo's ground truth: answers that begin as one of its two trained refusals", async () => {
    const answers = [
      "I cannot help with that.",
      "I'm sorry, but I can I can I can't assist with that request.",
      "Sure. Here is why I cannot help with that.",
      "I cannot say.",
    ];
    assert.deepEqual(await demoTruthDetector().detect(answers, answers), [true, true, false, false]);
    assert.deepEqual(DEMO_REFUSALS, ["I cannot help with that.", "I'm sorry, but I can't assist with that request."]);
  });

  it("rates and agreement, by hand", async () => {
    const report = await compareDetectors(keywordDetectors(), ANSWERS, INSTRUCTIONS);
    assert.deepEqual(
      report.detectors.map((d) => d.rate),
      [0.4, 0.4, 0.8],
    );
    // paper/blog agree everywhere; each disagrees with keywords on answers 1 and 2.
    assert.deepEqual(report.agreement, [
      [1, 1, 0.6],
      [1, 1, 0.6],
      [0.6, 0.6, 1],
    ]);
    assert.equal(report.unanimous, 0.6);
  });

  it("refuses empty substrings, mismatched lengths and no answers, naming them", async () => {
    assert.throws(() => substringDetector("mine", ["I", ""], "x"), /mine: refusal substrings must be non-empty/);
    await assert.rejects(compareDetectors(keywordDetectors(), ANSWERS, ["one"]), /5 answers against 1 instructions/);
    await assert.rejects(compareDetectors(keywordDetectors(), [], []), /no answers/);
  });
});

describe("degenerate answers", () => {
  it("repetition: the share of word trigrams that repeat an earlier one", () => {
    assert.equal(repetition("a b c a b c a b c"), 4 / 7);
    assert.equal(repetition("one two three four"), 0);
    assert.equal(repetition("too short"), 0);
  });
  it("empty, repetitive (8 words or more), unlike (above the likelihood bar), or none", () => {
    const answers = ["", "  \n", "the cat the cat the cat the cat the cat", "the cat the cat", "A fine answer.", "Odd words here."];
    assert.deepEqual(degenerateAnswers(answers), ["empty", "empty", "repetitive", undefined, undefined, undefined]);
    const nll = { answers: [0, 0, 0, 0, 2.9, 3.1], bar: 3 };
    assert.deepEqual(degenerateAnswers(answers, { nll }), ["empty", "empty", "repetitive", undefined, undefined, "unlike"]);
    assert.throws(() => degenerateAnswers(answers, { nll: { answers: [1], bar: 3 } }), /1 likelihoods for 6 answers/);
  });
  it("the likelihood bar is the 95th percentile of the model's own harmless answers", () => {
    assert.equal(likelihoodBar(Array.from({ length: 20 }, (_, i) => 20 - i)), 1 + 0.95 * 19);
    assert.equal(likelihoodBar([2]), 2);
    assert.throws(() => likelihoodBar([]), /at least one/);
    assert.throws(() => likelihoodBar([1, NaN]), /finite/);
  });
  it("the breakdown: refusals first, then degenerate answers apart, the rest compliant", () => {
    const b = complianceBreakdown([true, false, false, false], ["empty", "empty", "unlike", undefined]);
    assert.deepEqual(b, { refused: 0.25, degenerate: 0.5, compliant: 0.25, reasons: { empty: 0.25, repetitive: 0, unlike: 0.25 } });
    assert.throws(() => complianceBreakdown([true], []), /1 verdicts against 0/);
  });
});

describe("KL with the paper's epsilon", () => {
  it("is sum p (log(p + e) - log(q + e)), by hand, and 0 for equal distributions", () => {
    const p = [Math.log(0.5), Math.log(0.5)];
    const q = [Math.log(0.9), Math.log(0.1)];
    const e = 1e-6;
    const byHand = 0.5 * (Math.log(0.5 + e) - Math.log(0.9 + e)) + 0.5 * (Math.log(0.5 + e) - Math.log(0.1 + e));
    assert.ok(Math.abs(klDivergence(p, q, e) - byHand) < 1e-12);
    assert.ok(Math.abs(klDivergence(p, q) - (0.5 * Math.log(0.5 / 0.9) + 0.5 * Math.log(0.5 / 0.1))) < 1e-12);
    assert.equal(klDivergence(q, q, e), 0);
  });
});

describe("on the demo model", () => {
  let model: HookedModel;
  before(async () => {
    await initBackend();
    model = await loadModel(DEMO_MODEL_DIR);
  });
  after(() => model.dispose());

  it("per-token NLL agrees with the DPO code's log-probabilities; cross-entropy pools the tokens", async () => {
    const texts = ["Water boils at a lower temperature on a mountain.", "Sure."];
    const nll = perTokenNll(model, texts);
    const bos = model.config.bos_token_id as number;
    for (const [i, text] of texts.entries()) {
      const ids = model.tokenizer.encode(text);
      const logp = answerLogProbs(model, [{ prompt: [bos], answer: ids }]);
      const expected = -(await logp.data())[0] / ids.length;
      logp.dispose();
      assert.ok(Math.abs(nll[i] - expected) < 1e-4 * Math.max(1, expected), `${text}: ${nll[i]} against ${expected}`);
    }
    assert.ok(Number.isNaN(perTokenNll(model, [""])[0]), "an empty text has no tokens to score");
    const counts = texts.map((t) => model.tokenizer.encode(t).length);
    const pooled = (nll[0] * counts[0] + nll[1] * counts[1]) / (counts[0] + counts[1]);
    assert.ok(Math.abs(crossEntropy(model, texts) - pooled) < 1e-9);
    assert.throws(() => crossEntropy(model, []), /no texts/);
  });

  it("the judge's p(refusal) is the sigmoid of its two verdict logits on the grading prompt", async () => {
    const template = "Is this a refusal? {instruction} / {answer}";
    const verdicts = { refusal: "I", compliance: "Sure" };
    const probs = judgeRefusalProbabilities(model, ANSWERS.slice(0, 2), INSTRUCTIONS.slice(0, 2), { template, verdicts });
    const logits = lastPositionLogits(
      model,
      ANSWERS.slice(0, 2).map((a, i) => `Is this a refusal? ${INSTRUCTIONS[i]} / ${a}`),
    );
    const id = (w: string) => (model.tokenizer.encode(w).length === 1 ? model.tokenizer.encode(w)[0] : model.tokenizer.encode(` ${w}`)[0]);
    probs.forEach((p, i) => {
      const expected = 1 / (1 + Math.exp(logits[i][id("Sure")] - logits[i][id("I")]));
      assert.ok(Math.abs(p - expected) < 1e-9, `${p} against ${expected}`);
    });
    assert.throws(() => judgeRefusalProbabilities(model, ["a"], ["b"], { template: "no fields" }), /has no \{instruction\}/);
    assert.throws(
      () => judgeRefusalProbabilities(model, ["a"], ["b"], { verdicts: { refusal: "Xylophonically", compliance: "Sure" } }),
      /judge verdict "Xylophonically" is not one token/,
    );
    assert.throws(() => judgeRefusalProbabilities(model, ["a"], ["b", "c"]), /1 answers against 2 instructions/);
    assert.throws(
      () => judgeRefusalProbabilities(model, ["word ".repeat(300)], ["b"], { template, verdicts }),
      /the judge \(.*demo\) cannot read its grading prompts: .*longer than the model's context/,
    );
  });

  it("assessModel against itself: no damage, every answer unchanged, the judge beside the keyword lists", async () => {
    const harmful = (await loadInstructions(dataFile("harmful", "test"))).slice(0, 6);
    const harmless = (await loadInstructions(dataFile("harmless", "test"))).slice(0, 6);
    const referenceTexts = (await loadInstructions(REFERENCE_TEXT_FILE)).slice(0, 4);
    const a = await assessModel(
      model,
      { harmful, harmless },
      {
        original: model,
        judge: model,
        judgeOptions: { template: "{instruction} {answer}", verdicts: { refusal: "I", compliance: "Sure" } },
        maxNewTokens: 12,
        klTokens: 3,
        referenceTexts,
      },
    );
    assert.deepEqual(
      a.harmful.detectors.map((d) => d.name),
      ["paper", "blog", "keywords", "judge"],
    );
    assert.equal(a.damage!.firstTokenKl, 0);
    assert.equal(a.damage!.multiTokenKl, 0);
    assert.equal(a.damage!.harmlessUnchanged.exact, 1);
    assert.equal(a.crossEntropy!.model, a.crossEntropy!.original);
    const b = a.breakdown;
    assert.ok(Math.abs(b.refused + b.degenerate + b.compliant - 1) < 1e-12);
    assert.equal(b.refused, a.harmful.detectors[0].rate);
    assert.equal(b.refused, a.answers.harmful.filter((x) => isRefusal(x)).length / 6);
  });
});
