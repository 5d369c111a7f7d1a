// The paper's selection made exact (#26): its candidate set (resid_pre at every post-instruction token), its
// filter and choice on hand-made scores (paperChoice, each rule), and scoreCandidates agreeing with it: the
// epsilons, the layer filter taking resid_post@l as block l + 1, induce added at the block input.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import {
  candidateBlock,
  paperCandidates,
  paperChoice,
  postInstructionOffsets,
  scoreCandidates,
  DEFAULT_SELECTION_FILTERS,
  type ScoredCandidate,
} from "../src/pipeline/select.ts";
import { computeDirections, directionKey, usableDirections, type Direction } from "../src/pipeline/directions.ts";
import { collectMeanActivations } from "../src/pipeline/activations.ts";
import { PAPER_KL_EPSILON, PAPER_REFUSAL_EPSILON, refusalScore, refusalTokensFor } from "../src/pipeline/scores.ts";
import { meanKl } from "../src/pipeline/measures.ts";
import { activationAdditionHooks, directionAblationHooks, withHooks } from "../src/interventions.ts";
import { lastPositionLogits } from "../src/generation.ts";
import { ChatTokenizer } from "../src/tokenizer.ts";
import { initBackend } from "../src/backend.ts";
import { loadModel } from "../src/load.ts";
import { loadInstructions } from "../src/data/instructions.ts";
import { dataFile, DEMO_MODEL_DIR, PACKAGE_ROOT } from "../src/paths.ts";
import { tokenizerDir } from "./helpers/tokenizers.ts";
import type { HookedModel } from "../src/hooked-model.ts";
import { unitVector } from "../src/projection.ts";

const filters = DEFAULT_SELECTION_FILTERS; // KL <= 0.1, induce >= 0, last 20% pruned
const c = (key: string, block: number, bypass: number, induce = 1, kl = 0.01): ScoredCandidate => ({ key, block, bypass, induce, kl });

describe("the paper's filter and choice on hand-made scores", () => {
  it("the lowest bypass among those that pass wins; on a tie the first in the order given", () => {
    const r = paperChoice([c("a", 1, -2), c("b", 2, -5), c("c", 3, -5), c("d", 0, -1)], filters, 10);
    assert.equal(r.chosen?.key, "b");
    assert.equal(r.discarded.size, 0);
  });
  it("blocks at or past floor(L (1 - 0.2)) are discarded, the one before kept (10 layers: 8 and 9 go)", () => {
    const r = paperChoice([c("late", 8, -9), c("kept", 7, -1), c("last", 9, -10)], filters, 10);
    assert.equal(r.chosen?.key, "kept");
    assert.match(r.discarded.get("late")!, /block 8 is in the last 20% \(blocks 8-9\)/);
    assert.ok(r.discarded.has("last"));
    // 6 layers: floor(4.8) = 4, so blocks 4 and 5 go (a third, rounded to whole layers).
    assert.equal(paperChoice([c("x", 4, -1)], filters, 6).chosen, undefined);
    assert.equal(paperChoice([c("x", 3, -1)], filters, 6).chosen?.key, "x");
  });
  it("KL above the threshold is discarded; at the threshold kept", () => {
    const r = paperChoice([c("hot", 1, -9, 1, 0.1000001), c("edge", 2, -1, 1, 0.1)], filters, 10);
    assert.equal(r.chosen?.key, "edge");
    assert.match(r.discarded.get("hot")!, /KL 0.1000001 > 0.1/);
  });
  it("an induce score below the threshold is discarded; at it kept", () => {
    const r = paperChoice([c("weak", 1, -9, -0.001), c("edge", 2, -1, 0)], filters, 10);
    assert.equal(r.chosen?.key, "edge");
    assert.match(r.discarded.get("weak")!, /induce score -0.001 < 0/);
  });
  it("a NaN score is discarded, and with nothing left nothing is chosen", () => {
    const r = paperChoice([c("nan", 1, NaN), c("nan2", 1, -1, NaN)], filters, 10);
    assert.equal(r.chosen, undefined);
    assert.equal(r.discarded.get("nan"), "a score is NaN");
  });
  it("resid_post of layer l is the input of block l + 1; resid_pre and resid_mid belong to their own block", () => {
    assert.equal(candidateBlock({ hook: "resid_post", layer: 3 }), 4);
    assert.equal(candidateBlock({ hook: "resid_pre", layer: 3 }), 3);
    assert.equal(candidateBlock({ hook: "resid_mid", layer: 3 }), 3);
  });
});

describe("the paper's candidate set", () => {
  const direction = (layer: number, hook: Direction["hook"], tokenOffset: number, zero = false): Direction => {
    const raw = Float64Array.from({ length: 4 }, (_, i) => (zero ? 0 : i + layer + 1));
    return { layer, hook, tokenOffset, raw, norm: Math.hypot(...raw), unit: zero ? undefined : unitVector(raw) };
  };
  const all = [-3, -2, -1].flatMap((o) =>
    [0, 1, 2].flatMap((l) =>
      (["resid_pre", "resid_mid", "resid_post"] as const).map((h) => direction(l, h, o, h === "resid_pre" && l === 0)),
    ),
  );
  it("is resid_pre of every layer at every post-instruction offset, zero directions left out", () => {
    const picked = paperCandidates(all, [-2, -1], "dirs");
    assert.deepEqual(picked.map(directionKey), [
      "blocks.1.hook_resid_pre@-2",
      "blocks.2.hook_resid_pre@-2",
      "blocks.1.hook_resid_pre@-1",
      "blocks.2.hook_resid_pre@-1",
    ]);
  });
  it("refuses a file without every offset, naming them and the command that computes them", () => {
    assert.throws(
      () =>
        paperCandidates(
          all.filter((d) => d.tokenOffset === -1),
          [-3, -2, -1],
          "dirs.safetensors",
        ),
      /dirs\.safetensors has no resid_pre directions at token offsets -3, -2: .*abliterate directions --paper/,
    );
  });
  it("post-instruction tokens: what each family's template puts after the instruction, encoded alone", async () => {
    const expected: Record<string, number> = { llama3: 5, qwen3: 5, gemma2: 5 };
    for (const [family, n] of Object.entries(expected)) {
      const tokenizer = await ChatTokenizer.load(await tokenizerDir(family as "llama3"));
      assert.deepEqual(
        postInstructionOffsets({ tokenizer } as unknown as HookedModel),
        Array.from({ length: n }, (_, i) => i - n),
        family,
      );
    }
  });
});

describe("scoreCandidates as the paper's code scores", () => {
  let model: HookedModel;
  let directions: ReturnType<typeof usableDirections>;
  let harmful: string[];
  let harmless: string[];
  before(async () => {
    await initBackend();
    model = await loadModel(DEMO_MODEL_DIR);
    assert.deepEqual(postInstructionOffsets(model), [-4, -3, -2, -1]);
    const train = async (kind: "harmful" | "harmless") => (await loadInstructions(dataFile(kind, "train"))).slice(0, 32);
    const offsets = { tokenOffsets: [-2, -1] };
    directions = usableDirections(
      computeDirections(
        await collectMeanActivations(model, await train("harmful"), offsets),
        await collectMeanActivations(model, await train("harmless"), offsets),
      ),
    );
    harmful = (await loadInstructions(dataFile("harmful", "validation"))).slice(0, 6);
    harmless = (await loadInstructions(dataFile("harmless", "validation"))).slice(0, 6);
  });
  after(() => model.dispose());

  it("chooses what paperChoice chooses on its own scores, exhaustive or stopping early, with the paper's epsilons", () => {
    const refusalTokens = refusalTokensFor(model);
    const options = { refusalTokens, refusalEpsilon: PAPER_REFUSAL_EPSILON, klEpsilon: PAPER_KL_EPSILON };
    const candidates = paperCandidates(directions, [-2, -1], "dirs");
    const full = scoreCandidates(model, candidates, harmful, harmless, { ...options, exhaustive: true });
    const scores = full.candidates.map((s) => ({
      key: s.key,
      block: candidateBlock(s.direction),
      bypass: s.bypass,
      induce: s.induce,
      kl: s.kl,
    }));
    // Pruned candidates were never scored (NaN): paperChoice discards them too.
    const expected = paperChoice(scores, full.filters, model.nLayers);
    assert.ok(expected.chosen);
    assert.equal(full.chosen?.key, expected.chosen.key);
    assert.equal(scoreCandidates(model, candidates, harmful, harmless, options).chosen?.key, expected.chosen.key);
    // One candidate's KL by hand, with the paper's epsilon.
    const one = full.candidates.find((s) => !Number.isNaN(s.kl))!;
    const base = lastPositionLogits(model, harmless);
    const ablated = withHooks(directionAblationHooks(model, one.direction.unit), (fwdHooks) =>
      lastPositionLogits(model, harmless, { fwdHooks }),
    );
    assert.ok(Math.abs(one.kl - meanKl(base, ablated, PAPER_KL_EPSILON)) < 1e-9);
    assert.notEqual(one.kl, meanKl(base, ablated), "the epsilon changes the KL (the check is not vacuous)");
  });

  it("extended: resid_post@l is pruned as block l + 1, and its induce score adds its direction at resid_pre of l + 1", () => {
    const refusalTokens = refusalTokensFor(model);
    const extended = scoreCandidates(
      model,
      directions.filter((d) => d.tokenOffset === -1),
      harmful,
      harmless,
      { refusalTokens, exhaustive: true },
    );
    const post3 = extended.candidates.find((s) => s.key === "blocks.3.hook_resid_post@-1")!;
    assert.match(post3.discarded!, /resid_post of layer 3 is the input of block 4, which is in the pruned tail/);
    assert.ok(Number.isNaN(post3.bypass), "a pruned candidate is not scored");
    const post2 = extended.candidates.find((s) => s.key === "blocks.2.hook_resid_post@-1")!;
    const byHand = withHooks(activationAdditionHooks(model, post2.direction.raw, 3, 1, "resid_pre"), (fwdHooks) =>
      lastPositionLogits(model, harmless, { fwdHooks }),
    ).map((row) => refusalScore(row, refusalTokens));
    assert.ok(Math.abs(post2.induce - byHand.reduce((a, b) => a + b, 0) / byHand.length) < 1e-9);
  });
});

describe("select --mode paper and directions --paper", () => {
  let dir: string;
  const run = promisify(execFile);
  const cli = (...args: string[]) =>
    run(process.execPath, [join(PACKAGE_ROOT, "bin", "abliterate.js"), ...args], { cwd: PACKAGE_ROOT, timeout: 300_000 });
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "abliterate-paper-"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it("directions --paper computes every post-instruction offset; select's default mode scores resid_pre there only", async () => {
    const file = join(dir, "paper.safetensors");
    await cli("directions", "--paper", "-n", "32", "-o", file);
    const selection = JSON.parse((await cli("select", "-d", file, "-n", "8", "--json")).stdout) as {
      mode: string;
      candidates: { key: string }[];
    };
    assert.equal(selection.mode, "paper");
    assert.equal(selection.candidates.length, 5 * 4);
    assert.ok(
      selection.candidates.every((s) => /^blocks\.[1-5]\.hook_resid_pre@-[1-4]$/.test(s.key)),
      JSON.stringify(selection.candidates.map((s) => s.key)),
    );
    const last = join(dir, "last.safetensors");
    await cli("directions", "-n", "16", "-o", last);
    await assert.rejects(
      cli("select", "-d", last, "-n", "4"),
      /has no resid_pre directions at token offsets -4, -3, -2: .*directions --paper/,
    );
    const extended = JSON.parse((await cli("select", "-d", last, "-n", "4", "--mode", "extended", "--json")).stdout) as {
      mode: string;
      candidates: unknown[];
    };
    assert.equal(extended.mode, "extended");
    assert.equal(extended.candidates.length, 6 * 3 - 1);
    await assert.rejects(
      cli("directions", "--paper", "--token-offsets", "-1", "-o", join(dir, "x.safetensors")),
      /--paper takes the post-instruction tokens/,
    );
  });
});
