// The search (#26): the TPE sampler on test functions with known optima, the Pareto front and non-dominated
// sorting on hand-made points, study files (resume, cut lines, other settings), trials evaluated as hooks or
// in place, and the CLI's search and apply --study --trial.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { appendFile, cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import {
  parzenLogDensities,
  sampleParams,
  splitHistory,
  tpeGamma,
  tpeWeights,
  type CompletedTrial,
  type SearchSpace,
} from "../src/search/tpe.ts";
import { dominates, hypervolume2d, nonDominatedRanks, paretoFront } from "../src/search/pareto.ts";
import { readStudy, settingsDiffer, type StudySettings } from "../src/search/study.ts";
import { editSearchSpace, searchEdits, studyFront, trialEdit, trialVariants } from "../src/search/search.ts";
import { klReference, tailLogits } from "../src/pipeline/damage.ts";
import { keywordDetectors } from "../src/pipeline/detectors.ts";
import { frontRows } from "../src/search/table.ts";
import { paretoFigure } from "../src/report/plots.ts";
import { figureSvg } from "../src/report/static-svg.ts";
import { initBackend } from "../src/backend.ts";
import { loadModel } from "../src/load.ts";
import { collectMeanActivations } from "../src/pipeline/activations.ts";
import { computeDirections, type Direction } from "../src/pipeline/directions.ts";
import { loadInstructions } from "../src/data/instructions.ts";
import { generateCompletions, lastPositionLogits } from "../src/generation.ts";
import { meanKl, refusalRate } from "../src/pipeline/measures.ts";
import { orthogonalizeModel } from "../src/pipeline/orthogonalize.ts";
import { dataFile, DEMO_MODEL_DIR, PACKAGE_ROOT } from "../src/paths.ts";
import { modelDir } from "./helpers/reference.ts";
import { tokenizerDir } from "./helpers/tokenizers.ts";
import { writeRandomCheckpoint } from "../tools/random-checkpoint.ts";
import { unitVector } from "../src/projection.ts";

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Run the sampler on f for `trials` trials; returns the history. */
function optimise(space: SearchSpace, f: (p: Record<string, unknown>) => number[], trials: number, seed: number, startupTrials?: number) {
  const history: CompletedTrial[] = [];
  for (let t = 0; t < trials; t++) {
    const params = sampleParams(space, history, t, { seed, startupTrials });
    history.push({ params, values: f(params) });
  }
  return history;
}

const branin = ({ x, y }: Record<string, unknown>) => {
  const [a, b] = [x as number, y as number];
  return [(b - (5.1 / (4 * Math.PI ** 2)) * a * a + (5 / Math.PI) * a - 6) ** 2 + 10 * (1 - 1 / (8 * Math.PI)) * Math.cos(a) + 10];
};
const BRANIN: SearchSpace = { x: { kind: "float", low: -5, high: 10 }, y: { kind: "float", low: 0, high: 15 } };
const BRANIN_MIN = 0.397887;
const SEEDS = [0, 1, 2, 3, 4, 5, 6, 7];

describe("TPE sampler", () => {
  it("splits a history and estimates l(x) and g(x) as Optuna 5.0.0's TPESampler does (one and two objectives)", async () => {
    // test/fixtures/optuna-tpe/make.py computed these with Optuna's own code: random histories of 40, 30, 60 and 260
    // trials (Branin; a float and a categorical; ZDT1 twice), ramped weights past 25 trials and the MOTPE split
    // (uncapped past 250 trials) included.
    const reference = JSON.parse(await readFile(new URL("./fixtures/optuna-tpe/reference.json", import.meta.url), "utf8")) as {
      optuna: string;
      cases: {
        name: string;
        space: SearchSpace;
        history: CompletedTrial[];
        below: number[];
        densities: Record<string, { points: (number | string)[]; below: number[]; above: number[] }>;
      }[];
    };
    assert.equal(reference.optuna, "5.0.0");
    for (const c of reference.cases) {
      const [below] = splitHistory(c.history);
      assert.deepEqual(
        below.map((t) => c.history.indexOf(t)),
        c.below,
        `${c.name}: the good trials`,
      );
      for (const [name, expected] of Object.entries(c.densities)) {
        const ours = parzenLogDensities(c.space, c.history, name, expected.points);
        for (const side of ["below", "above"] as const)
          for (let i = 0; i < expected.points.length; i++)
            // 1e-6: the error of the erf approximation used for the kernels' truncation masses (1.5e-7 absolute).
            assert.ok(
              Math.abs(ours[side][i] - expected[side][i]) < 1e-6,
              `${c.name}, ${name} = ${expected.points[i]}: log ${side === "below" ? "l" : "g"} ${ours[side][i]}, ` +
                `Optuna ${expected[side][i]}`,
            );
      }
    }
  });

  it("Branin (minimum 0.3979): median best of 8 seeds within 0.15 of it after 100 trials, better than random search's", () => {
    const best = (seed: number, startup?: number) => Math.min(...optimise(BRANIN, branin, 100, seed, startup).map((t) => t.values[0]));
    const tpe = SEEDS.map((s) => best(s));
    const random = SEEDS.map((s) => best(s, 100)); // start-up trials only: random search
    assert.ok(median(tpe) - BRANIN_MIN < 0.15, `TPE medians ${median(tpe)}: ${tpe.map((v) => v.toFixed(3))}`);
    assert.ok(median(tpe) < median(random), `TPE ${median(tpe)} against random ${median(random)}`);
  });

  it("a float and a categorical parameter: (x - 1.3)^2 + [c != 'c'] reaches within 0.01 of 0 in 60 trials (median of 8 seeds)", () => {
    const space: SearchSpace = { x: { kind: "float", low: -5, high: 5 }, c: { kind: "categorical", choices: ["a", "b", "c", "d"] } };
    const f = (p: Record<string, unknown>) => [((p.x as number) - 1.3) ** 2 + (p.c === "c" ? 0 : 1)];
    const bests = SEEDS.map((s) => Math.min(...optimise(space, f, 60, s).map((t) => t.values[0])));
    assert.ok(median(bests) < 0.01, bests.map((v) => v.toFixed(4)).join(" "));
  });

  it("two objectives (ZDT1 on two variables): the front after 80 trials dominates more than random search's, for every seed", () => {
    const space: SearchSpace = { a: { kind: "float", low: 0, high: 1 }, b: { kind: "float", low: 0, high: 1 } };
    const zdt1 = (p: Record<string, unknown>) => {
      const g = 1 + 9 * (p.b as number);
      return [p.a as number, g * (1 - Math.sqrt((p.a as number) / g))];
    };
    for (const seed of SEEDS) {
      const hv = (startup?: number) =>
        hypervolume2d(
          optimise(space, zdt1, 80, seed, startup).map((t) => t.values),
          [1.1, 11],
        );
      const [tpe, random] = [hv(), hv(80)];
      assert.ok(tpe > random, `seed ${seed}: hypervolume ${tpe} against random search's ${random}`);
    }
  });

  it("same seed and history: the same parameters; another seed: others; start-up draws lie in the space", () => {
    const h = optimise(BRANIN, branin, 30, 5);
    const again = optimise(BRANIN, branin, 30, 5);
    assert.deepEqual(again, h);
    assert.notDeepEqual(optimise(BRANIN, branin, 30, 6), h);
    for (const t of h) {
      assert.ok((t.params.x as number) >= -5 && (t.params.x as number) <= 10);
      assert.ok((t.params.y as number) >= 0 && (t.params.y as number) <= 15);
    }
    // Trial n's draw depends on (seed, n) and the history, not on the calls before it.
    assert.deepEqual(sampleParams(BRANIN, h.slice(0, 20), 20, { seed: 5 }), h[20].params);
  });

  it("Optuna's gamma and weights", () => {
    assert.deepEqual([1, 10, 11, 100, 250, 300].map(tpeGamma), [1, 1, 2, 10, 25, 25]);
    assert.deepEqual(tpeWeights(3), [1, 1, 1]);
    const w = tpeWeights(30);
    assert.equal(w.length, 30);
    assert.ok(Math.abs(w[0] - 1 / 30) < 1e-12 && w[4] === 1 && w[29] === 1 && w[3] < 1);
  });

  it("splits two objectives by non-dominated rank, the last rank cut by hypervolume contribution", () => {
    // 20 trials: gamma = 2. Rank 0 holds three points, one too many. Against the reference point (1.1, 1.1) the
    // middle one adds most area alone (0.36 against 0.11 each); then either extreme adds 0.05: the first is kept.
    const points = [[0, 1], [0.5, 0.5], [1, 0], ...Array.from({ length: 17 }, (_, i) => [2 + i, 2 + i])];
    const history = points.map((values, i) => ({ params: { i }, values }));
    const [below, above] = splitHistory(history);
    assert.deepEqual(
      below.map((t) => t.params.i),
      [0, 1],
    );
    assert.equal(above.length, 18);
  });

  it("bad spaces and histories are refused, naming the parameter", () => {
    assert.throws(() => sampleParams({ x: { kind: "float", low: 1, high: 1 } }, [], 0, { seed: 0 }), /x needs finite bounds low < high/);
    assert.throws(() => sampleParams({ c: { kind: "categorical", choices: [] } }, [], 0, { seed: 0 }), /c has no choices/);
    const three = Array.from({ length: 12 }, (_, i) => ({ params: { x: i / 12 }, values: [1, 2, 3] }));
    assert.throws(() => sampleParams({ x: { kind: "float", low: 0, high: 1 } }, three, 12, { seed: 0 }), /one or two objectives, got 3/);
    const wrong = Array.from({ length: 12 }, (_, i) => ({ params: { c: "z" }, values: [i] }));
    assert.throws(
      () => sampleParams({ c: { kind: "categorical", choices: ["a"] } }, wrong, 12, { seed: 0 }),
      /"z", not one of the choices/,
    );
  });
});

describe("Pareto front", () => {
  const points = [
    [0.5, 0.5], // 0 front
    [0, 1], // 1 front
    [1, 0], // 2 front
    [0.6, 0.6], // 3 dominated by 0
    [0.5, 0.5], // 4 equal to 0: front too
    [0, 1.2], // 5 dominated by 1
    [1, 0.5], // 6 dominated by 0 and 2
    [0.2, 0.9], // 7 front
  ];
  it("is non-dominated and complete on hand-made points (equal points both kept)", () => {
    const front = paretoFront(points);
    assert.deepEqual(front, [0, 1, 2, 4, 7]);
    for (const i of front) for (const j of front) assert.ok(!dominates(points[j], points[i]), `${j} dominates front point ${i}`);
    for (let i = 0; i < points.length; i++)
      if (!front.includes(i))
        assert.ok(
          front.some((j) => dominates(points[j], points[i])),
          `point ${i} is off the front but not dominated`,
        );
  });
  it("non-dominated ranks and the 2-D hypervolume, by hand", () => {
    assert.deepEqual(nonDominatedRanks(points), [0, 0, 0, 1, 0, 1, 1, 0]);
    assert.equal(
      hypervolume2d(
        [
          [1, 2],
          [2, 1],
        ],
        [3, 3],
      ),
      3,
    );
    assert.equal(
      hypervolume2d(
        [
          [1, 2],
          [2, 1],
          [2, 2],
        ],
        [3, 3],
      ),
      3,
    );
    assert.equal(hypervolume2d([[4, 0]], [3, 3]), 0);
  });
  it("refuses NaN and ragged points, naming the point", () => {
    assert.throws(
      () =>
        paretoFront([
          [0, 1],
          [NaN, 0],
        ]),
      /point 1 is not finite/,
    );
    assert.throws(() => paretoFront([[0, 1], [0]]), /point 1 has 1 objectives/);
  });
});

describe("search on the demo model", () => {
  let dir: string;
  let directions: Direction[];
  let harmful: string[];
  let harmless: string[];
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "abliterate-search-"));
    await initBackend();
    const model = await loadModel(DEMO_MODEL_DIR);
    const [h, hl] = await Promise.all([loadInstructions(dataFile("harmful", "train")), loadInstructions(dataFile("harmless", "train"))]);
    directions = computeDirections(
      await collectMeanActivations(model, h.slice(0, 24)),
      await collectMeanActivations(model, hl.slice(0, 24)),
    );
    model.dispose();
    harmful = (await loadInstructions(dataFile("harmful", "validation"))).slice(0, 8);
    harmless = (await loadInstructions(dataFile("harmless", "validation"))).slice(0, 8);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const options = (study?: string, trials = 6) => ({
    trials,
    seed: 3,
    startupTrials: 3,
    harmful,
    harmless,
    directionsFile: "dirs",
    model: "demo",
    maxNewTokens: 8,
    klTokens: 3,
    study,
  });

  it("the space spans heretic's direction indices at usable layers, kernels, hooks and the switches", async () => {
    const space = editSearchSpace(directions, 6);
    assert.deepEqual(space.directionIndex, { kind: "float", low: 2, high: 4.5 });
    assert.deepEqual(space.hook, { kind: "categorical", choices: ["resid_pre", "resid_mid", "resid_post"] });
    assert.deepEqual(space["attention.maxWeightPosition"], { kind: "float", low: 0, high: 5 });
    assert.deepEqual(editSearchSpace(directions, 6, { kernelRanges: "heretic" })["mlp.maxWeightPosition"], {
      kind: "float",
      low: 3,
      high: 5,
    });
    for (const name of ["projected", "biprojected", "normPreserving"]) assert.equal(space[name].kind, "categorical");
    assert.equal(editSearchSpace(directions, 6, { normPreserving: false }).normPreserving, undefined);
    assert.throws(() => editSearchSpace(directions, 6, { tokenOffset: -7 }), /no directions at token offset -7/);
  });

  it("a killed search resumes to the same study as an uninterrupted one; a cut last line is dropped", async () => {
    const model = await loadModel(DEMO_MODEL_DIR);
    try {
      const whole = join(dir, "whole.jsonl");
      const full = await searchEdits(model, directions, options(whole));
      const part = join(dir, "part.jsonl");
      await searchEdits(model, directions, options(part, 4));
      await appendFile(part, '{"trial": 4, "params": {"hoo'); // killed while writing trial 4
      const resumed = await searchEdits(model, directions, options(part));
      const strip = (s: { trials: typeof full.trials }) => s.trials.map(({ seconds, ...t }) => t);
      assert.deepEqual(strip(resumed), strip(full));
      assert.deepEqual(resumed.baseline, full.baseline);
      assert.deepEqual(strip(await readStudy(part)), strip(full));
      assert.deepEqual(resumed.front, studyFront(full));
      // Another seed on the same file: refused, naming the setting.
      await assert.rejects(searchEdits(model, directions, { ...options(part), seed: 4 }), /seed: the study has 3, this search asks for 4/);
      assert.ok(full.trials.some((t) => t.evaluatedWith === "weights") && full.trials.some((t) => t.evaluatedWith === "hooks"));
    } finally {
      model.dispose();
    }
  });

  it("a trial's measures are its edit's: baked into a copy, refusal and the KL over 3 answer tokens are the trial's", async () => {
    const model = await loadModel(DEMO_MODEL_DIR);
    try {
      const study = await searchEdits(model, directions, options(undefined, 5));
      const reference = await klReference(model, harmless, 3);
      // The model searched is left as it was.
      assert.equal(meanKl(reference.logits, tailLogits(model, reference.ids, reference.positions, [])), 0);
      assert.ok(reference.positions.some((p) => p === 3));
      for (const trial of study.trials) {
        const edit = trialEdit(trial.params, directions, -1, model.nLayers, "dirs");
        const copy = await loadModel(DEMO_MODEL_DIR);
        try {
          orthogonalizeModel(copy, edit.direction.unit, edit.orthogonalize);
          const kl = meanKl(reference.logits, tailLogits(copy, reference.ids, reference.positions, []));
          assert.ok(
            Math.abs(kl - trial.kl) <= 1e-5 * Math.max(1, kl),
            `trial ${trial.trial} (${trial.evaluatedWith}): KL ${trial.kl} against ${kl} baked`,
          );
          const refusal = refusalRate(await generateCompletions(copy, harmful, { maxNewTokens: 8 }));
          assert.equal(refusal, trial.refusal, `trial ${trial.trial}`);
        } finally {
          copy.dispose();
        }
      }
      assert.ok(
        study.trials.some((t) => t.kl > 1e-4),
        "some trial changes the model (the comparison is not vacuous)",
      );
    } finally {
      model.dispose();
    }
  });

  it("counts refusals with the detector given, and records it; substrings and a detector together are refused", async () => {
    const model = await loadModel(DEMO_MODEL_DIR);
    try {
      const keywords = keywordDetectors()[2];
      const study = await searchEdits(model, directions, { ...options(undefined, 1), detector: keywords });
      assert.equal(study.header.evaluation.detector, "keywords");
      const answers = await generateCompletions(model, harmful, { maxNewTokens: 8 });
      const verdicts = await keywords.detect(answers, harmful);
      assert.equal(study.baseline!.refusal, verdicts.filter(Boolean).length / harmful.length);
      assert.equal((await searchEdits(model, directions, options(undefined, 1))).header.evaluation.detector, "paper");
      await assert.rejects(
        searchEdits(model, directions, { ...options(undefined, 1), detector: keywords, refusalSubstrings: ["x"] }),
        /give refusal substrings or a detector, not both/,
      );
    } finally {
      model.dispose();
    }
  });

  it("on a sandwich-norm model every trial edits the weights in place and restores them exactly", async () => {
    // Gemma 2's shapes with its real tokenizer, random weights: the prompts are text.
    const tokenizer = await tokenizerDir("gemma2");
    const fixture = JSON.parse(await readFile(join(modelDir("gemma2"), "config.json"), "utf8"));
    const vocab = JSON.parse(await readFile(join(tokenizer, "tokenizer.json"), "utf8"));
    const vocabSize =
      [...Object.values(vocab.model.vocab as Record<string, number>), ...vocab.added_tokens.map((t: { id: number }) => t.id)].reduce(
        (a, b) => Math.max(a, b),
        0,
      ) + 1;
    const gemma = join(dir, "gemma2");
    await writeRandomCheckpoint(
      gemma,
      { ...fixture, vocab_size: vocabSize, bos_token_id: 2, eos_token_id: 1, pad_token_id: 0 },
      { seed: 4 },
    );
    await cp(tokenizer, gemma, { recursive: true });
    const model = await loadModel(gemma);
    try {
      const before = lastPositionLogits(model, harmless.slice(0, 2));
      const study = await searchEdits(model, fakeDirections(model.nLayers, model.dModel), {
        ...options(undefined, 3),
        harmful: harmful.slice(0, 2),
        harmless: harmless.slice(0, 2),
        maxNewTokens: 2,
      });
      assert.ok(study.trials.every((t) => t.evaluatedWith === "weights"));
      assert.ok(
        study.trials.some((t) => t.kl > 0),
        "the trials change the model",
      );
      assert.deepEqual(lastPositionLogits(model, harmless.slice(0, 2)), before);
    } finally {
      model.dispose();
    }
  });
});

describe("search and apply --study --trial on the command line", () => {
  let dir: string;
  const run = promisify(execFile);
  const bin = join(PACKAGE_ROOT, "bin", "abliterate.js");
  const cli = (...args: string[]) => run(process.execPath, [bin, ...args], { cwd: PACKAGE_ROOT, timeout: 300_000 });
  const fails = async (...args: string[]) => {
    try {
      await cli(...args);
    } catch (error) {
      return String((error as { stderr?: string }).stderr);
    }
    throw new Error(`abliterate ${args.join(" ")} succeeded`);
  };
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "abliterate-search-cli-"));
    await cli("directions", "-n", "16", "-o", join(dir, "dirs.safetensors"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it("search writes the study, the page and the picture; resume goes on; apply --trial exports the trial and reproduces", async () => {
    const dirs = join(dir, "dirs.safetensors");
    const out = join(dir, "search");
    const args = [
      "search",
      "-d",
      dirs,
      "-o",
      out,
      "--n-harmful",
      "8",
      "--n-harmless",
      "8",
      "--max-new-tokens",
      "8",
      "--startup-trials",
      "3",
    ];
    await cli(...args, "--trials", "4", "--reference", "blocks.3.hook_resid_pre@-1");
    assert.match(await fails(...args, "--trials", "6"), /already exist: --resume goes on with that study/);
    const result = JSON.parse(
      (await cli(...args, "--trials", "6", "--resume", "--reference", "blocks.3.hook_resid_pre@-1", "--json")).stdout,
    ) as {
      front: { trial: number; refusal: number; kl: number }[];
      trials: { trial: number }[];
      references: { key: string }[];
    };
    assert.equal(result.trials.length, 6);
    assert.equal(result.references.length, 1, "a reference measured once, not again on resume");
    const html = await readFile(join(out, "search.html"), "utf8");
    assert.match(html, /Pareto front/);
    assert.match(await readFile(join(out, "pareto.svg"), "utf8"), /^<svg/);
    const chosen = result.front[0].trial;
    const exported = join(dir, "trial");
    await cli("apply", "--study", join(out, "study.jsonl"), "--trial", String(chosen), "-o", exported);
    const record = JSON.parse(await readFile(join(exported, "abliterate.json"), "utf8"));
    assert.equal(record.searchTrial.trial, chosen);
    assert.equal(record.directionsFile, dirs);
    const again = join(dir, "again");
    await cli("apply", "--reproduce", join(exported, "abliterate.json"), "-o", again);
    assert.deepEqual(await readFile(join(again, "model.safetensors")), await readFile(join(exported, "model.safetensors")));
    // Bad uses, each refused naming what is wrong.
    assert.match(await fails("apply", "--study", join(out, "study.jsonl"), "-o", join(dir, "x")), /--study and --trial go together/);
    assert.match(
      await fails("apply", "--study", join(out, "study.jsonl"), "--trial", "60", "-o", join(dir, "x")),
      /has no trial 60: it holds trials 0 to 5/,
    );
    assert.match(
      await fails("apply", "--study", join(out, "study.jsonl"), "--trial", "0", "--scale", "0.5", "-o", join(dir, "x")),
      /leave out --scale/,
    );
    assert.match(await fails("apply", "--study", dirs, "--trial", "0", "-o", join(dir, "x")), /not JSON|not an abliterate study header/);
    assert.match(await fails(...args, "--trials", "6", "--resume", "--seed", "9"), /seed: the study has 0, this search asks for 9/);
  });

  it("--detector and --judge choose what counts a refusal, recorded in the study", async () => {
    const dirs = join(dir, "dirs.safetensors");
    const small = ["--trials", "1", "--startup-trials", "1", "--n-harmful", "2", "--n-harmless", "2", "--max-new-tokens", "2"];
    const header = async (out: string) => JSON.parse((await readFile(join(out, "study.jsonl"), "utf8")).split("\n")[0]);
    await cli("search", "-d", dirs, "-o", join(dir, "kw"), ...small, "--detector", "keywords");
    assert.equal((await header(join(dir, "kw"))).evaluation.detector, "keywords");
    const template = join(dir, "template.txt");
    await writeFile(template, "{instruction} {answer}");
    await cli(
      "search",
      "-d",
      dirs,
      "-o",
      join(dir, "judged"),
      ...small,
      "--judge",
      "models/demo",
      "--judge-template",
      template,
      "--judge-verdicts",
      "I,Sure",
    );
    assert.equal((await header(join(dir, "judged"))).evaluation.detector, "judge");
    assert.match(
      await fails("search", "-d", dirs, "-o", join(dir, "both"), ...small, "--refusal-substrings", "no", "--detector", "blog"),
      /--refusal-substrings is a detector of its own/,
    );
    assert.match(await fails("search", "-d", dirs, "-o", join(dir, "x"), "--detector", "vibes"), /expected paper, blog or keywords/);
  });

  it("refuses a link or a missing study, and bad numbers, before loading anything", async () => {
    const dirs = join(dir, "dirs.safetensors");
    const out = join(dir, "linked");
    await rm(out, { recursive: true, force: true });
    await cli(
      "search",
      "-d",
      dirs,
      "-o",
      join(dir, "empty"),
      "--trials",
      "1",
      "--n-harmful",
      "2",
      "--n-harmless",
      "2",
      "--max-new-tokens",
      "2",
    );
    await mkdir(out);
    await writeFile(join(dir, "precious.txt"), "keep me");
    await symlink(join(dir, "precious.txt"), join(out, "study.jsonl"));
    assert.match(await fails("search", "-d", dirs, "-o", out, "--resume"), /study\.jsonl is a link/);
    assert.equal(await readFile(join(dir, "precious.txt"), "utf8"), "keep me");
    assert.match(await fails("search", "-d", dirs, "-o", join(dir, "nothing"), "--resume"), /does not exist; leave out --resume/);
    assert.match(
      await fails("search", "-d", dirs, "-o", join(dir, "precious.txt")),
      /precious\.txt is a file; the search writes a folder there/,
    );
    assert.equal(await readFile(join(dir, "precious.txt"), "utf8"), "keep me");
    assert.match(await fails("search", "-d", dirs, "-o", join(dir, "n"), "--trials", "0"), /--trials must be a positive integer/);
    assert.match(
      await fails("search", "-d", dirs, "-o", join(dir, "n"), "--token-offset", "2"),
      /--token-offset must be a negative integer/,
    );
    assert.match(await fails("search", "-d", dirs, "-o", join(dir, "n"), "--kernel-ranges", "deep"), /expected whole or heretic/);
  });
});

describe("study files", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "abliterate-study-"));
  });
  after(() => rm(dir, { recursive: true, force: true }));
  const settings: StudySettings = {
    seed: 1,
    startupTrials: 2,
    candidates: 24,
    space: { x: { kind: "float", low: 0, high: 1 } },
    directionsFile: "d",
    tokenOffset: -1,
    model: "m",
    data: { harmful: 2, harmless: 2, sha256: "ab" },
    evaluation: { maxNewTokens: 4, refusalSubstrings: null, klTokens: 1, detector: "paper" },
  };
  const header = JSON.stringify({ kind: "abliterate-study", version: 1, ...settings });
  const trial = (n: number) => JSON.stringify({ trial: n, params: { x: 0.5 }, refusal: 0.5, kl: 0.1, evaluatedWith: "hooks", seconds: 1 });

  it("reads header, baseline and trials; names the line of anything else", async () => {
    const file = join(dir, "s.jsonl");
    await writeFile(file, [header, JSON.stringify({ baseline: { refusal: 1, kl: 0 } }), trial(0), trial(1)].join("\n") + "\n");
    const study = await readStudy(file);
    assert.equal(study.trials.length, 2);
    assert.deepEqual(study.baseline, { refusal: 1, kl: 0 });
    await writeFile(file, [header, trial(0), trial(2)].join("\n") + "\n");
    await assert.rejects(readStudy(file), /s\.jsonl:3: trial 2 where trial 1 was expected/);
    await writeFile(file, [header, "{nope"].join("\n") + "\n");
    await assert.rejects(readStudy(file), /s\.jsonl:2: not JSON/);
    await writeFile(
      file,
      [header, JSON.stringify({ trial: 0, params: {}, refusal: 0, kl: 0, evaluatedWith: "hooks", seconds: 0 })].join("\n") + "\n",
    );
    await assert.rejects(readStudy(file), /s\.jsonl:2: trial 0 has no value for x/);
    await writeFile(file, JSON.stringify({ kind: "other" }) + "\n");
    await assert.rejects(readStudy(file), /s\.jsonl:1: not an abliterate study header/);
  });

  it("a cut last line is dropped, and cut from the file only when asked", async () => {
    const file = join(dir, "cut.jsonl");
    const whole = [header, trial(0)].join("\n") + "\n";
    await writeFile(file, whole + '{"trial": 1, "par');
    assert.equal((await readStudy(file)).trials.length, 1);
    assert.notEqual(await readFile(file, "utf8"), whole);
    await readStudy(file, { repair: true });
    assert.equal(await readFile(file, "utf8"), whole);
  });

  it("a study written before detectors were recorded reads as counted by the paper's substrings", async () => {
    const file = join(dir, "old.jsonl");
    const { detector, ...evaluation } = settings.evaluation;
    assert.equal(detector, "paper");
    await writeFile(file, JSON.stringify({ kind: "abliterate-study", version: 1, ...settings, evaluation }) + "\n");
    assert.equal((await readStudy(file)).header.evaluation.detector, "paper");
  });

  it("says which settings differ", () => {
    assert.deepEqual(settingsDiffer(settings, settings), []);
    assert.deepEqual(settingsDiffer(settings, { ...settings, seed: 2, data: { ...settings.data, sha256: "cd" } }), [
      "seed: the study has 1, this search asks for 2",
      'data: the study has {"harmful":2,"harmless":2,"sha256":"ab"}, this search asks for {"harmful":2,"harmless":2,"sha256":"cd"}',
    ]);
  });
});

describe("the front as rows and as a figure", () => {
  const trials = [
    { trial: 0, refusal: 0.5, kl: 0.01, params: { directionIndex: 2.5, projected: true } },
    { trial: 1, refusal: 0, kl: 0.02, params: { directionIndex: 3, hook: "resid_mid" } },
    { trial: 2, refusal: 0.6, kl: 0.02, params: { directionIndex: 3 } },
  ];
  it("lists the front fewest refusals first, each edit in words", () => {
    const rows = frontRows({ trials: trials as never }, [0, 1]);
    assert.deepEqual(
      rows.map((r) => r.trial),
      [1, 0],
    );
    assert.equal(rows[0].edit, "resid_mid direction index 3.00");
    assert.equal(rows[1].edit, "resid_pre direction index 2.50; projected");
    assert.deepEqual(studyFront({ trials: trials as never }), [0, 1]);
  });
  it("draws every trial, the front, the baseline and references, statically too", () => {
    const f = paretoFigure(trials, [0, 1], { refusal: 0.9, kl: 0 }, [{ label: "paper", refusal: 0, kl: 0.03 }]);
    assert.deepEqual(
      f.data.map((t) => t.name),
      ["trials", "Pareto front", "no intervention", "paper"],
    );
    assert.deepEqual(f.data[0].x, [0.6]);
    assert.match(figureSvg(f), /Pareto front/);
  });
  it("trial parameters that are not numbers are refused, naming them", () => {
    assert.throws(() => trialVariants({ directionIndex: "x" }), /directionIndex must be a finite number, got "x"/);
  });
});

/** Directions for a model without data: random unit-ish vectors with harmless means, one per layer and hook. */
function fakeDirections(nLayers: number, d: number): Direction[] {
  let state = 7;
  const next = () => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
  const out: Direction[] = [];
  for (const hook of ["resid_pre"] as const)
    for (let layer = 0; layer < nLayers; layer++) {
      const raw = Float64Array.from({ length: d }, next);
      const norm = Math.hypot(...raw);
      const unit = unitVector(raw);
      out.push({ layer, hook, tokenOffset: -1, raw, norm, unit, harmlessMean: Float64Array.from({ length: d }, next) });
    }
  return out;
}
