// The stage functions the CLI, runPipeline and the notebooks share, on the demo model and the llama
// reference: hand-checkable answers and bad input.
import assert from "node:assert/strict";
import { describe, it, before, after } from "node:test";
import * as tf from "@tensorflow/tfjs-core";
import {
  chooseByGeneration,
  chosenCandidate,
  collectMeanActivations,
  computeDirections,
  DEMO_MODEL_DIR,
  directionAblationHooks,
  evaluateCandidates,
  evaluateRefusal,
  generateCompletions,
  lastPositionLogits,
  loadInstructionSets,
  loadModel,
  maxAbsDifference,
  meanNorms,
  orthogonalizeModel,
  pickDirection,
  projectionsOn,
  promptBatches,
  rankedCandidates,
  residualWriteComponent,
  unitVector,
  usableDirections,
  withHooks,
  displayPath,
  isRefusal,
  answerAgreement,
  blogRanking,
  directionKey,
  rankRawByMeanAbs,
  cosineWithPlanted,
  explainDifference,
  loadPlanted,
  filterByRefusalScore,
  refusalScore,
  refusalTokensFor,
  type CandidateEvaluation,
  type HookedModel,
  type Selection,
} from "../src/index.ts";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { floatTensor, writeSafetensors } from "../src/safetensors/write.ts";
import { modelDir, reference } from "./helpers/reference.ts";

describe("stage functions on the demo model", () => {
  let model: HookedModel;
  before(async () => {
    model = await loadModel(DEMO_MODEL_DIR);
  });
  after(() => model.dispose());

  it("filterByRefusalScore keeps the harmful instructions the model refuses and the harmless ones it answers", async () => {
    const sets = await loadInstructionSets({}, { nTrain: 48, nVal: 1, nTest: 1 });
    const refusalTokens = refusalTokensFor(model);
    const kept = filterByRefusalScore(model, { harmful: sets.harmfulTrain, harmless: sets.harmlessTrain }, { refusalTokens });
    for (const q of kept.harmful) assert.ok(refusalScore(lastPositionLogits(model, [q])[0], refusalTokens) > 0, q);
    for (const q of kept.harmless) assert.ok(refusalScore(lastPositionLogits(model, [q])[0], refusalTokens) < 0, q);
    assert.equal(kept.harmful.length + kept.dropped.harmful, 48);
    assert.equal(kept.harmless.length + kept.dropped.harmless, 48);
    assert.ok(kept.harmful.length >= 40, `${kept.harmful.length} of 48 harmful kept`);
    assert.throws(
      () =>
        filterByRefusalScore(
          model,
          { harmful: sets.harmlessTrain.slice(0, 4), harmless: sets.harmlessTrain.slice(0, 4) },
          { refusalTokens },
        ),
      /the model refuses none of the 4 harmful instructions/,
    );
  });

  it("loadInstructionSets keeps the first n of each of the six sets", async () => {
    const sets = await loadInstructionSets({}, { nTrain: 3, nVal: 2, nTest: 1 });
    assert.deepEqual(
      Object.values(sets).map((s) => s.length),
      [3, 3, 2, 2, 1, 1],
    );
    await assert.rejects(
      loadInstructionSets({ harmfulTest: "no-such-file.jsonl" }, { nTrain: 1, nVal: 1, nTest: 1 }),
      /no-such-file.jsonl: cannot read instructions \(ENOENT\)/,
    );
  });

  it("promptBatches pads each batch on the left and reports where it starts", () => {
    const batches = [...promptBatches(model, [[5, 6, 7], [8], [9, 10]], 2)];
    assert.deepEqual(
      batches.map((b) => b.start),
      [0, 2],
    );
    assert.deepEqual(batches[0].batch.inputIds, [
      [5, 6, 7],
      [model.padId, model.padId, 8],
    ]);
    assert.deepEqual(batches[0].batch.attentionMask, [
      [1, 1, 1],
      [0, 0, 1],
    ]);
    assert.throws(() => [...promptBatches(model, [[1]], 0)], /batch size must be a positive integer, got 0/);
  });

  it("evaluateRefusal: the demo model refuses the harmful test prompts and answers the harmless ones; against itself KL is 0", async () => {
    const sets = await loadInstructionSets({}, { nTrain: 1, nVal: 1, nTest: 8 });
    const e = await evaluateRefusal(
      model,
      { harmful: sets.harmfulTest, harmless: sets.harmlessTest },
      { reference: model, maxNewTokens: 12 },
    );
    // The rates are those of the completions: each one judged by isRefusal.
    assert.equal(e.harmfulRefusalRate, e.completions.harmful.filter((c) => isRefusal(c)).length / 8);
    assert.ok(e.harmfulRefusalRate >= 0.75, `the demo model refused ${e.harmfulRefusalRate} of 8 harmful test prompts`);
    assert.equal(e.harmlessRefusalRate, 0);
    assert.equal(e.harmlessKl, 0);
    assert.equal(e.completions.harmful.length, 8);
    await assert.rejects(evaluateRefusal(model, { harmful: [], harmless: ["Hi"] }), /refusalRate: no completions/);
  });

  it("evaluateCandidates ablates each direction, and chooseByGeneration picks the lowest refusal rate within the KL limit", async () => {
    const sets = await loadInstructionSets({}, { nTrain: 32, nVal: 1, nTest: 4 });
    const directions = computeDirections(
      await collectMeanActivations(model, sets.harmfulTrain),
      await collectMeanActivations(model, sets.harmlessTrain),
    );
    const layer2 = pickDirection(directions, "blocks.2.hook_resid_post@-1", "directions");
    const layer0 = pickDirection(directions, "blocks.0.hook_resid_post@-1", "directions");
    const evaluations = await evaluateCandidates(model, [layer0, layer2], {
      harmful: sets.harmfulTest,
      harmless: sets.harmlessTest,
      maxNewTokens: 12,
      samples: 2,
    });
    assert.deepEqual(
      evaluations.map((e) => e.key),
      ["blocks.0.hook_resid_post@-1", "blocks.2.hook_resid_post@-1"],
    );
    assert.equal(evaluations[1].refusalRate, 0, "the planted layer's direction removes refusal");
    assert.equal(evaluations[1].samples.length, 2);
    // The same figure by hand, with the hooks.
    const completions = await withHooks(directionAblationHooks(model, layer2.unit), (fwdHooks) =>
      generateCompletions(model, sets.harmfulTest, { fwdHooks, maxNewTokens: 12 }),
    );
    assert.deepEqual(
      evaluations[1].samples.map((s) => s.completion),
      completions.slice(0, 2),
    );
    // Coherent compliance against given answers: 1 against its own answers, 0.5 when half of them differ from the start.
    const reference = completions.map((c, i) => (i % 2 === 0 ? c : `Something else entirely. ${c}`));
    const [measured] = await evaluateCandidates(model, [layer2], {
      harmful: sets.harmfulTest,
      harmless: sets.harmlessTest,
      maxNewTokens: 12,
      compliantAnswers: reference,
    });
    assert.equal(measured.coherentCompliance, 0.5);
    assert.equal(evaluations[1].coherentCompliance, undefined);
    await assert.rejects(
      evaluateCandidates(model, [layer2], { harmful: sets.harmfulTest, harmless: sets.harmlessTest, compliantAnswers: ["one"] }),
      /1 compliant answers for 4 harmful instructions/,
    );
    const made = (key: string, refusalRate: number, kl: number): CandidateEvaluation => ({
      key,
      layer: 0,
      hook: "resid_pre",
      refusalRate,
      kl,
      samples: [],
    });
    assert.equal(chooseByGeneration([made("a", 0.5, 0.01), made("b", 0, 0.5), made("c", 0.5, 0.001)]).key, "c");
    assert.equal(
      chooseByGeneration([made("b", 0, 0.5), made("d", 0.2, 0.3)]).key,
      "b",
      "with none under the limit, the lowest refusal rate",
    );
    assert.throws(() => chooseByGeneration([]), /no candidates were evaluated/);
  });

  it("projectionsOn: harmful prompts sit further along the planted layer's direction than harmless ones", async () => {
    const sets = await loadInstructionSets({}, { nTrain: 32, nVal: 1, nTest: 6 });
    const directions = computeDirections(
      await collectMeanActivations(model, sets.harmfulTrain),
      await collectMeanActivations(model, sets.harmlessTrain),
    );
    const planted = (await loadPlanted(DEMO_MODEL_DIR))!;
    const d = pickDirection(directions, `blocks.${planted.headLayer}.hook_resid_post@-1`, "directions");
    const harmful = projectionsOn(model, sets.harmfulTest, d, { batchSize: 4 });
    const harmless = projectionsOn(model, sets.harmlessTest, d);
    assert.equal(harmful.length, 6);
    assert.ok(Math.min(...harmful) > Math.max(...harmless), `harmful ${harmful} vs harmless ${harmless}`);
  });
});

describe("ground truth and answer agreement", () => {
  const words = {
    encode: (text: string) =>
      text
        .split(" ")
        .filter(Boolean)
        .map((w) => w.length),
  }; // a toy tokenizer: one id per word
  it("answerAgreement: exact and first-k-token matches, and bad input", () => {
    const a = answerAgreement(
      ["Sure. Here is a plan.", "Sure. Here are tips.", "I cannot help.", "x"],
      ["Sure. Here is a plan.", "Sure. Here are some tips.", "Sure. Here is a guide.", "x"],
      words,
      3,
    );
    assert.deepEqual(a, { exact: 0.5, firstTokens: 0.75, k: 3, n: 4 });
    // A shorter answer matches only a reference that is as short.
    assert.equal(answerAgreement(["Sure."], ["Sure. Here"], words, 3).firstTokens, 0);
    assert.throws(() => answerAgreement(["a"], ["a", "b"], words), /1 answers against 2 reference answers/);
    assert.throws(() => answerAgreement([], [], words), /0 answers/);
    assert.throws(() => answerAgreement(["a"], ["a"], words, 0), /k must be a positive integer, got 0/);
  });

  it("explainDifference: shares of the squared norm along the planted direction, along another, and the rest", () => {
    // r = 3 p + 4 o + 12 e with p, o, e orthonormal: shares 9/169, 16/169, 144/169.
    const e = explainDifference([3, 4, 12], [1, 0, 0], [0, 1, 0]);
    assert.ok(
      Math.abs(e.planted - 9 / 169) < 1e-12 && Math.abs(e.other - 16 / 169) < 1e-12 && Math.abs(e.rest - 144 / 169) < 1e-12,
      JSON.stringify(e),
    );
    // Correlated directions: what `other` explains beyond the planted one only; everything explained leaves no rest.
    const c = explainDifference([1, 1, 0], [1, 0, 0], [1, 1, 0]);
    assert.ok(Math.abs(c.planted - 0.5) < 1e-12 && Math.abs(c.other - 0.5) < 1e-12 && Math.abs(c.rest) < 1e-12, JSON.stringify(c));
    assert.throws(() => explainDifference([0, 0, 0], [1, 0, 0], [0, 1, 0]), /difference of means is zero/);
  });

  it("loadPlanted reads the demo's planted direction; a folder without one gives undefined; a wrong file is named", async () => {
    const planted = (await loadPlanted(DEMO_MODEL_DIR))!;
    assert.equal(planted.direction.length, 128);
    assert.ok(Math.abs(Math.hypot(...planted.direction) - 1) < 1e-5);
    assert.ok(planted.headLayer >= planted.unitLayer);
    const cos = cosineWithPlanted(
      [{ layer: 1, hook: "resid_post", tokenOffset: -1, raw: Float64Array.from(planted.direction, (x) => -2 * x), norm: 2 }],
      planted,
    );
    assert.ok(Math.abs(cos[0].cosine + 1) < 1e-9);
    const dir = await mkdtemp(join(tmpdir(), "abliterate-planted-"));
    try {
      assert.equal(await loadPlanted(dir), undefined);
      const direction = floatTensor("safety.write_direction", new Float32Array(4).fill(0.5), [4]);
      await writeSafetensors(join(dir, "planted.safetensors"), [direction], { format: "something-else" });
      await assert.rejects(loadPlanted(dir), /planted\.safetensors: not a planted-direction file \(metadata\.format is "something-else"\)/);
      await writeSafetensors(
        join(dir, "planted.safetensors"),
        [direction],
        { format: "abliterate-planted", unit_layer: "0", head_layer: "one" },
        { overwrite: true },
      );
      await assert.rejects(loadPlanted(dir), /metadata\.head_layer must be a layer index, got "one"/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("displayPath", () => {
  it("shows a path inside the project relative to it, and any other path unchanged", () => {
    assert.equal(displayPath(DEMO_MODEL_DIR), "models/demo");
    assert.equal(displayPath(join(DEMO_MODEL_DIR, "..", "..")), ".");
    assert.equal(displayPath("/somewhere/else"), "/somewhere/else");
    assert.equal(displayPath("../out/run"), "../out/run");
  });
});

describe("the blog's ranking", () => {
  const dir = (layer: number, hook: "resid_pre" | "resid_mid" | "resid_post", raw: number[], tokenOffset = -1) => ({
    layer,
    hook,
    tokenOffset,
    raw: Float64Array.from(raw),
    norm: Math.hypot(...raw),
  });
  it("resid_pre of layers 1 to L-1 at the last token, as unit vectors, by |mean of the entries|", () => {
    const directions = [
      dir(0, "resid_pre", [9, 9, 9, 9]), // layer 0: left out
      dir(1, "resid_pre", [10, 0, 0, 0]), // raw mean 2.5, unit mean 0.25
      dir(2, "resid_pre", [1, 1, 0, 0]), // raw mean 0.5, unit mean 0.354
      dir(3, "resid_pre", [-1, -1, -1, 0]), // unit mean -0.433: the absolute value counts
      dir(4, "resid_pre", [0, 0, 0, 0]), // zero: left out
      dir(2, "resid_post", [5, 5, 5, 5]), // other hook points: left out
      dir(2, "resid_pre", [5, 5, 5, 5], -2), // other tokens: left out
    ];
    const ranked = blogRanking(directions);
    assert.deepEqual(ranked.map(directionKey), ["blocks.3.hook_resid_pre@-1", "blocks.2.hook_resid_pre@-1", "blocks.1.hook_resid_pre@-1"]);
    assert.ok(Math.abs(Math.hypot(...ranked[0].unit) - 1) < 1e-12);
    // The raw variant ranks the same vectors differently: by the unnormalised mean, every hook point.
    assert.equal(directionKey(rankRawByMeanAbs(directions.slice(1, 4))[0]), "blocks.1.hook_resid_pre@-1");
    assert.throws(
      () => blogRanking([dir(0, "resid_pre", [1, 0]), dir(1, "resid_post", [1, 0])]),
      /no non-zero resid_pre direction of layer 1 or later/,
    );
  });
});

describe("stage functions on the llama reference", () => {
  const ref = reference("llama");
  let model: HookedModel;
  before(async () => {
    model = await loadModel(modelDir("llama"));
  });
  after(() => model.dispose());

  it("meanNorms: the norm of each layer's mean, and an offset that was not recorded", async () => {
    const means = await collectMeanActivations(model, ref.harmful, { tokenOffsets: [-2, -1] });
    const norms = meanNorms(means, "resid_post", -2);
    const m = means.means.get("blocks.1.hook_resid_post")![0];
    assert.ok(Math.abs(norms[1] - Math.hypot(...m)) < 1e-12, `${norms[1]} vs ${Math.hypot(...m)}`);
    assert.throws(() => meanNorms(means, "resid_post", -3), /token offset -3 was not recorded \(recorded: -2, -1\)/);
  });

  it("usableDirections, pickDirection: zero directions are left out, keys are checked", async () => {
    const means = await collectMeanActivations(model, ref.harmful);
    const same = computeDirections(means, means);
    assert.deepEqual(usableDirections(same), []);
    const directions = computeDirections(means, await collectMeanActivations(model, ref.harmless));
    assert.equal(usableDirections(directions).length, 9);
    assert.throws(
      () => pickDirection(directions, "blocks.7.hook_resid_pre@-1", "dirs.safetensors"),
      /dirs.safetensors has no direction blocks.7.hook_resid_pre@-1 \(it has blocks.0.hook_resid_pre@-1/,
    );
    assert.throws(
      () => pickDirection(directions, undefined, "dirs.safetensors"),
      /dirs.safetensors holds 9 directions; choose one with a key/,
    );
  });

  it("chosenCandidate names the filters and the best candidates when none passed", () => {
    const selection = {
      candidates: [
        { key: "a", bypass: 1, induce: -1, kl: 0.01, discarded: "induce score -1.00 < 0" },
        { key: "b", bypass: -2, induce: 1, kl: 0.5, discarded: "KL 0.500 > 0.1" },
      ],
      baseline: { harmfulRefusalScore: 0, harmlessRefusalScore: 0 },
      filters: { klThreshold: 0.1, induceThreshold: 0, pruneLayerFraction: 0.2 },
    } as unknown as Selection;
    assert.deepEqual(
      rankedCandidates(selection).map((c) => c.key),
      ["b", "a"],
    );
    assert.throws(
      () => chosenCandidate(selection),
      new RegExp(
        String.raw`no candidate direction passed the selection filters \(KL <= 0.1, induce >=` +
          String.raw` 0, layer in the first 80%\): b: KL 0.500 > 0.1; a: induce score -1.00 < 0`,
      ),
    );
  });

  it("residualWriteComponent is near 1e-7 after orthogonalisation, not before", async () => {
    const unit = unitVector(ref.direction);
    const before = residualWriteComponent(model, unit, ref.seqs);
    const edited = await loadModel(modelDir("llama"));
    orthogonalizeModel(edited, unit);
    const after = residualWriteComponent(edited, unit, ref.seqs);
    edited.dispose();
    assert.ok(before > 0.01, `before: ${before}`);
    assert.ok(after < 1e-5, `after: ${after}`);
    assert.throws(
      () => residualWriteComponent(model, unitVector([1, 0]), ref.seqs),
      /direction has 2 values, but the model's d_model \(hidden_size\) is 64/,
    );
  });

  it("maxAbsDifference: the largest gap, NaN counts as infinite, shapes must agree", () => {
    assert.equal(
      maxAbsDifference(
        [
          [1, 2],
          [3, 4],
        ],
        [
          [1, 2.5],
          [3, 3],
        ],
      ),
      1,
    );
    assert.equal(maxAbsDifference([[1, NaN]], [[1, 2]]), Infinity);
    assert.throws(() => maxAbsDifference([[1]], [[1], [2]]), /1 rows against 2/);
    assert.throws(() => maxAbsDifference([[1]], [[1, 2]]), /row 0 has 1 values against 2/);
  });

  it("withHooks disposes the hooks' tensors after a synchronous or asynchronous run, and after an error", async () => {
    const unit = unitVector(ref.direction);
    const before = tf.memory().numTensors;
    withHooks(directionAblationHooks(model, unit), (fwdHooks) => lastPositionLogits(model, ref.seqs, { fwdHooks }));
    await withHooks(directionAblationHooks(model, unit), async (fwdHooks) => model.generate(ref.seqs, { fwdHooks, maxNewTokens: 2 }));
    assert.throws(
      () =>
        withHooks(directionAblationHooks(model, unit), () => {
          throw new Error("boom");
        }),
      /boom/,
    );
    await assert.rejects(
      withHooks(directionAblationHooks(model, unit), async () => {
        throw new Error("late boom");
      }),
      /late boom/,
    );
    assert.equal(tf.memory().numTensors, before);
    assert.throws(
      () => directionAblationHooks(model, unitVector([1, 2])),
      /direction has 2 values, but the model's d_model \(hidden_size\) is 64/,
    );
  });
});

describe("the paper's selection, stopping early", () => {
  it("chooses what the exhaustive selection chooses, with fewer passes, on the demo model and the llama reference", async () => {
    const { loadInstructionSets, scoreCandidates, refusalTokensFor, candidateBlock } = await import("../src/index.ts");
    for (const dir of [DEMO_MODEL_DIR, modelDir("llama")]) {
      const model = await loadModel(dir);
      const ref = reference("llama");
      const sets = dir === DEMO_MODEL_DIR ? await loadInstructionSets({}, { nTrain: 64, nVal: 8, nTest: 1 }) : undefined;
      const [trainA, trainB, valA, valB] = sets
        ? [sets.harmfulTrain, sets.harmlessTrain, sets.harmfulVal, sets.harmlessVal]
        : [ref.harmful, ref.harmless, ref.harmful, ref.harmless];
      const directions = usableDirections(
        computeDirections(await collectMeanActivations(model, trainA), await collectMeanActivations(model, trainB)),
      );
      const refusalTokens = sets ? refusalTokensFor(model) : ref.refusal_tokens;
      // Filters open enough that the reference model (random weights) has a winner too.
      const filters = sets ? {} : { klThreshold: 10, induceThreshold: -100 };
      const full = scoreCandidates(model, directions, valA, valB, { ...filters, refusalTokens, exhaustive: true });
      const fast = scoreCandidates(model, directions, valA, valB, { ...filters, refusalTokens });
      assert.ok(full.chosen, `${dir}: nothing chosen`);
      assert.equal(fast.chosen?.key, full.chosen.key, dir);
      assert.equal(fast.chosen?.bypass, full.chosen.bypass);
      assert.ok(fast.passes < full.passes, `${fast.passes} passes against ${full.passes}`);
      assert.equal(
        full.passes,
        valA.length +
          valB.length +
          directions.filter((d) => candidateBlock(d) < Math.floor(model.nLayers * 0.8)).length * (valA.length + 2 * valB.length),
      );
      const capped = scoreCandidates(model, directions, valA, valB, { ...filters, refusalTokens, maxCandidates: 2 });
      assert.equal(capped.candidates.filter((c) => !Number.isNaN(c.bypass)).length, 2);
      assert.throws(
        () => scoreCandidates(model, directions, valA, valB, { refusalTokens, maxCandidates: 0 }),
        /maxCandidates must be a positive integer, got 0/,
      );
      model.dispose();
    }
  });
});
