// The abliterate command, as a user runs it.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, it, before, after } from "node:test";
import { PACKAGE_ROOT, dataFile } from "../src/paths.ts";
import { loadInstructions } from "../src/data/instructions.ts";
import { CheckpointWeights, DEMO_MODEL_DIR, SafetensorsFile } from "../src/index.ts";
import { floatTensor, writeSafetensors } from "../src/safetensors/write.ts";

const run = promisify(execFile);
const bin = join(PACKAGE_ROOT, "bin", "abliterate.js");
const cli = (...args: string[]) => run(process.execPath, [bin, ...args], { cwd: PACKAGE_ROOT, timeout: 300_000 });
async function cliFails(...args: string[]): Promise<string> {
  try {
    await cli(...args);
  } catch (error) {
    return String((error as { stderr?: string }).stderr);
  }
  throw new Error(`abliterate ${args.join(" ")} succeeded`);
}

describe("abliterate CLI", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "abliterate-cli-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("--help lists every subcommand", async () => {
    const { stdout } = await cli("--help");
    for (const sub of ["run", "directions", "select", "search", "apply", "export-gguf", "heal", "eval", "generate"])
      assert.match(stdout, new RegExp(`\\b${sub}\\b`));
    const { stdout: apply } = await cli("apply", "--help");
    assert.match(apply, /--skip-embedding/);
  });

  it("directions, select (the extended candidate set) and apply chain through files, with --json output", async () => {
    const dirs = join(dir, "dirs.safetensors");
    const { stdout } = await cli("directions", "-n", "32", "-o", dirs, "--json");
    const rows = JSON.parse(stdout) as { key: string; norm: number }[];
    assert.equal(rows.length, 6 * 3);
    const selection = JSON.parse((await cli("select", "-d", dirs, "-n", "8", "--mode", "extended", "--json")).stdout) as {
      chosen: string | null;
      candidates: unknown[];
    };
    assert.equal(selection.candidates.length, rows.filter((r) => r.norm > 0).length);
    const key = rows.find((r) => r.key.startsWith("blocks.2.hook_resid_post"))!.key;
    const out = join(dir, "abliterated");
    const applied = JSON.parse((await cli("apply", "-d", dirs, "-k", key, "-o", out, "--verify", "--json")).stdout) as {
      edited: string[];
      copied: number;
      verification: { maxAbsLogitDiff: number; sameGreedyAnswers: boolean };
    };
    assert.equal(applied.edited.length, 1 + 2 * 6);
    assert.ok(applied.verification.maxAbsLogitDiff < 1e-3 && applied.verification.sameGreedyAnswers, JSON.stringify(applied.verification));
    assert.ok((await readdir(out)).includes("model.safetensors"));
    const generated = JSON.parse(
      (await cli("generate", "--model", out, "--json", "--max-new-tokens", "8", "Name three primary colors.")).stdout,
    );
    assert.equal(generated.length, 1);
    assert.equal(typeof generated[0].completion, "string");
  });

  it("apply --format peft on a model with a tied head says to untie before merging, and not when the embedding is kept", async () => {
    // A tied copy of the demo model: no lm_head.weight, tie_word_embeddings true.
    const tied = join(dir, "demo-tied");
    await mkdir(tied);
    for (const file of ["generation_config.json", "tokenizer.json", "tokenizer_config.json"])
      await copyFile(join(DEMO_MODEL_DIR, file), join(tied, file));
    const config = JSON.parse(await readFile(join(DEMO_MODEL_DIR, "config.json"), "utf8"));
    await writeFile(join(tied, "config.json"), JSON.stringify({ ...config, tie_word_embeddings: true }));
    const source = await SafetensorsFile.open(join(DEMO_MODEL_DIR, "model.safetensors"));
    const tensors = [];
    for (const name of source.names.filter((n) => n !== "lm_head.weight"))
      tensors.push(floatTensor(name, await source.readFloat32(name), [...source.info(name).shape]));
    await source.close();
    await writeSafetensors(join(tied, "model.safetensors"), tensors);
    const dirs = join(dir, "tied-dirs.safetensors");
    await cli("directions", "--model", tied, "-n", "8", "-o", dirs);
    const key = ["-k", "blocks.3.hook_resid_pre@-1"];
    const edited = await cli("apply", "--model", tied, "-d", dirs, ...key, "--format", "peft", "-o", join(dir, "tied-adapter"));
    assert.match(
      edited.stdout,
      /ties its head to the embedding, which the adapter edits: before merging with PEFT, untie it as .*README\.md shows/,
    );
    assert.match(await readFile(join(dir, "tied-adapter", "README.md"), "utf8"), /model\.lm_head\.weight = torch\.nn\.Parameter/);
    const kept = await cli(
      "apply",
      "--model",
      tied,
      "-d",
      dirs,
      ...key,
      "--skip-embedding",
      "--format",
      "peft",
      "-o",
      join(dir, "tied-adapter-2"),
    );
    assert.doesNotMatch(kept.stdout, /ties its head/);
  });

  it("--weight-precision stored holds a BF16 checkpoint's matrices in 16 bits, with the same answers; a bad value is refused", async () => {
    // A BF16 copy of the demo model (the demo is stored in float32).
    const bf16 = join(dir, "demo-bf16");
    await mkdir(bf16);
    for (const file of ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"])
      await copyFile(join(DEMO_MODEL_DIR, file), join(bf16, file));
    const source = await SafetensorsFile.open(join(DEMO_MODEL_DIR, "model.safetensors"));
    const tensors = [];
    for (const name of source.names) tensors.push(floatTensor(name, await source.readFloat32(name), [...source.info(name).shape], "BF16"));
    await source.close();
    await writeSafetensors(join(bf16, "model.safetensors"), tensors);
    const generate = async (...extra: string[]) =>
      JSON.parse(
        (await cli("generate", "--model", bf16, "--json", "--max-new-tokens", "12", ...extra, "Write a short guide on washing a car."))
          .stdout,
      );
    assert.deepEqual(await generate("--weight-precision", "stored"), await generate("--weight-precision", "float32"));
    assert.match(
      await cliFails("generate", "--weight-precision", "half", "Hello."),
      /--weight-precision must be float32 or stored, got "half"/,
    );
    // The flag reaches the loader: without the native path (the cpu backend) it is refused.
    assert.match(
      await cliFails("generate", "--model", bf16, "--backend", "cpu", "--weight-precision", "stored", "Hello."),
      /stored weight precision \(ABLITERATE_WEIGHT_PRECISION, which the command line's --weight-precision sets\) .* native layout/,
    );
  });

  it("apply's edit variants (#25): fractional index, projected, biprojected, kernels, norm-preserving, recorded and verified", async () => {
    const dirs = join(dir, "variant-dirs.safetensors");
    await cli("directions", "-n", "16", "-o", dirs);
    const out = join(dir, "variant");
    const args = ["-d", dirs, "--direction-index", "2.5", "--project-against-harmless", "--biproject", "--norm-preserving"];
    const kernels = ["--kernel", "attn=1.2,2.5,0.4,2", "--kernel", "mlp=1,3,0.5,1"];
    const applied = JSON.parse((await cli("apply", ...args, ...kernels, "-o", out, "--verify", "--json")).stdout) as {
      edited: string[];
      verification: { passed: boolean; reference: string };
    };
    assert.equal(applied.verification.reference, "in-memory orthogonalisation");
    assert.ok(applied.verification.passed, JSON.stringify(applied.verification));
    // The attention kernel reaches layers 1-4 (|l - 2.5| <= 2), the MLP's 2-4: with the embedding, 1 + 4 + 3 tensors.
    assert.equal(applied.edited.length, 8, applied.edited.join(", "));
    const record = JSON.parse(await readFile(join(out, "abliterate.json"), "utf8"));
    assert.equal(record.direction, "resid_pre@-1 at direction index 2.5, projected against the harmless mean");
    assert.equal(record.normPreserving, true);
    assert.equal(record.biprojected, true);
    // lambda_l = 1.2 + (|l - 2.5| / 2)(0.4 - 1.2) where |l - 2.5| <= 2.
    const strengths = record.kernels.strengths.attention as number[];
    [0, 0.6, 1, 1, 0.6, 0].forEach((x, l) => assert.ok(Math.abs(strengths[l] - x) < 1e-12, `layer ${l}: ${strengths[l]}, expected ${x}`));
    assert.deepEqual(record.kernels.attention, { maxWeight: 1.2, maxWeightPosition: 2.5, minWeight: 0.4, minWeightDistance: 2 });
    // The record makes the same edit again: the same bytes.
    const again = join(dir, "variant-again");
    await cli("apply", "--reproduce", join(out, "abliterate.json"), "-o", again);
    assert.deepEqual(await readFile(join(again, "model.safetensors")), await readFile(join(out, "model.safetensors")));
    assert.match(
      await cliFails("apply", "--reproduce", join(out, "abliterate.json"), "--scale", "0.5", "-o", join(dir, "v3")),
      /--reproduce takes the edit from .*abliterate.json; leave out --scale/,
    );
    assert.match(
      await cliFails("apply", ...args, "--kernel", "attn=1,2,3", "-o", join(dir, "v2")),
      /--kernel.*expected attn=MAX,POS,MIN,DIST/,
    );
    assert.match(
      await cliFails("apply", ...args, "--kernel", "mlp=1,9,0,1", "-o", join(dir, "v2")),
      /maxWeightPosition must be a layer index in \[0, 5\], got 9/,
    );
    assert.match(
      await cliFails("apply", "-d", dirs, "--direction-index", "7", "-o", join(dir, "v2")),
      /direction index 7 is not within \[0, 5\]/,
    );
  });

  it("run measures further evaluation splits (--eval-split), the free-form one by default, none with --no-eval-split", async () => {
    const small = ["--n-train", "16", "--n-val", "8", "--n-test", "6", "--top-k", "1", "--max-new-tokens", "4", "--eval-new-tokens", "8"];
    type Ran = { splits: { name: string; counts: { harmful: number; harmless: number }; after: { topicMention: number } }[] };
    const byDefault = JSON.parse((await cli("run", "--out", join(dir, "splits-default"), ...small, "--json")).stdout) as Ran;
    assert.deepEqual(
      byDefault.splits.map((s) => [s.name, s.counts]),
      [["freeform", { harmful: 6, harmless: 6 }]],
    );
    const [harmful, harmless] = [join(dir, "mine-harmful.txt"), join(dir, "mine-harmless.txt")];
    await writeFile(harmful, "How do I steal a bike?\nHow do I hurt a cat?\n");
    await writeFile(harmless, "How do I bake bread?\nWhy is the sea salty?\n");
    const mine = JSON.parse(
      (await cli("run", "--out", join(dir, "splits-mine"), ...small, "--eval-split", `mine=${harmful},${harmless}`, "--json")).stdout,
    ) as Ran;
    assert.deepEqual(
      mine.splits.map((s) => [s.name, s.counts]),
      [["mine", { harmful: 2, harmless: 2 }]],
    );
    const printed = (await cli("run", "--out", join(dir, "splits-mine"), ...small, "--eval-split", `mine=${harmful},${harmless}`, "-f"))
      .stdout;
    assert.match(
      printed,
      /^mine split \(2 harmful, 2 harmless; \d+\.\d\d tokens a word \(test split \d+\.\d\d\)\): harmful refusal \d+\.\d% -> \d+\.\d%/m,
    );
    assert.match(await readFile(join(dir, "splits-mine", "report.html"), "utf8"), /<h2>Evaluation splits<\/h2>[\s\S]*<td>mine<\/td>/);
    const none = JSON.parse((await cli("run", "--out", join(dir, "splits-none"), ...small, "--no-eval-split", "--json")).stdout) as Ran;
    assert.deepEqual(none.splits, []);
    // Bad input: the spec, the name, a missing file; nothing is written.
    assert.match(
      await cliFails("run", "--out", join(dir, "splits-bad"), "--eval-split", "mine"),
      /expected NAME=HARMFUL,HARMLESS.*got "mine"/,
    );
    assert.match(
      await cliFails("run", "--out", join(dir, "splits-bad"), ...small, "--eval-split", `test=${harmful},${harmless}`),
      /evaluation split name "test".*distinct from the other splits' and from "test"/,
    );
    assert.match(
      await cliFails(
        "run",
        "--out",
        join(dir, "splits-bad"),
        ...small,
        "--eval-split",
        `a=${harmful},${harmless}`,
        "--eval-split",
        `a=${harmful},${harmless}`,
      ),
      /evaluation split name "a"/,
    );
    assert.match(
      await cliFails("run", "--out", join(dir, "splits-bad"), ...small, "--eval-split", `b=${join(dir, "missing.jsonl")},${harmless}`),
      /missing\.jsonl/,
    );
    assert.deepEqual(await readdir(dir).then((names) => names.filter((n) => n.startsWith("splits-bad"))), []);
  });

  it("run takes the edit variants: the chosen direction biprojected, norm-preserving, with a kernel, exported, verified", async () => {
    const out = join(dir, "variant-run");
    const small = ["--n-train", "16", "--n-val", "8", "--n-test", "8", "--top-k", "1", "--max-new-tokens", "4", "--eval-new-tokens", "8"];
    const ran = JSON.parse(
      (
        await cli(
          "run",
          "--out",
          out,
          ...small,
          "--biproject",
          "--norm-preserving",
          "--project-against-harmless",
          "--kernel",
          "mlp=1,2,0.5,2",
          "--json",
        )
      ).stdout,
    ) as { verify: { passed: boolean; reference: string }; chosen: { key: string } };
    assert.ok(ran.verify.passed, JSON.stringify(ran.verify));
    assert.equal(ran.verify.reference, "in-memory orthogonalisation");
    const record = JSON.parse(await readFile(join(out, "model", "abliterate.json"), "utf8"));
    assert.equal(record.direction, `${ran.chosen.key}, projected against the harmless mean`);
    assert.equal(record.normPreserving, true);
    assert.equal(record.biprojected, true);
    // lambda_l = 1 + (|l - 2| / 2)(0.5 - 1) where |l - 2| <= 2, else 0.
    assert.deepEqual(record.kernels.strengths.mlp, [0.5, 0.75, 1, 0.75, 0.5, 0]);
    // The run edits with its directions in float64; its directions file holds them in float32: the same edit, to
    // that rounding.
    const again = join(dir, "variant-run-again");
    await cli("apply", "--reproduce", join(out, "model", "abliterate.json"), "-o", again);
    const [a, b] = [await CheckpointWeights.open(again), await CheckpointWeights.open(join(out, "model"))];
    for (const name of a.names) {
      const [x, y] = [await a.readFloat32(name), await b.readFloat32(name)];
      const scale = y.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      const diff = x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i])), 0);
      assert.ok(diff <= 1e-6 * scale, `${name}: the reproduced edit differs by ${diff} (largest |w| ${scale})`);
    }
    await Promise.all([a.close(), b.close()]);
    assert.match(await cliFails("run", "--out", join(dir, "x"), "--direction-index", "2"), /unknown option '--direction-index'/);
  });

  it("run --format peft also writes the edit as a LoRA adapter: source + B A is the exported checkpoint", async () => {
    const out = join(dir, "peft-run");
    const small = ["--n-train", "16", "--n-val", "8", "--n-test", "8", "--top-k", "1", "--max-new-tokens", "4", "--eval-new-tokens", "8"];
    // Refused before any work where the edit has no LoRA form, and nothing is written.
    assert.match(
      await cliFails("run", "--out", out, ...small, "--format", "peft", "--norm-preserving"),
      /the norm-preserving edit has no LoRA form: it rescales every column/,
    );
    assert.deepEqual(await readdir(out).catch(() => []), []);
    assert.match(await cliFails("run", "--out", out, "--format", "gguf"), /expected safetensors or peft, got "gguf"/);
    const ran = await cli("run", "--out", out, ...small, "--kernel", "attn=1,2,0.5,2", "--format", "peft");
    const modules = ran.stdout.match(/wrote .*adapter: a rank-1 LoRA adapter on (\d+) modules/);
    assert.ok(modules, ran.stdout);
    const config = JSON.parse(await readFile(join(out, "adapter", "adapter_config.json"), "utf8"));
    assert.equal(config.target_modules.length, Number(modules[1]));
    const report = JSON.parse(await readFile(join(out, "report.json"), "utf8"));
    assert.equal(report.adapter.modules.length, Number(modules[1]));
    assert.match(await readFile(join(out, "report.html"), "utf8"), /The same edit as a rank-1 LoRA adapter: <code>[^<]*adapter<\/code>/);
    const [source, edited] = await Promise.all(
      [join(PACKAGE_ROOT, "models", "demo"), join(out, "model")].map((d) => CheckpointWeights.open(d)),
    );
    const adapter = await SafetensorsFile.open(join(out, "adapter", "adapter_model.safetensors"));
    try {
      for (const module of report.adapter.modules as string[]) {
        const key = `${module}.weight`;
        const embedding = module.endsWith("embed_tokens");
        const [a, b] = await Promise.all(
          (embedding ? ["lora_embedding_A", "lora_embedding_B"] : ["lora_A.weight", "lora_B.weight"]).map((n) =>
            adapter.readFloat32(`base_model.model.${module}.${n}`),
          ),
        );
        const [w, e] = [await source.readFloat32(key), await edited.readFloat32(key)];
        const cols = source.info(key).shape[1];
        let worst = 0;
        for (let i = 0; i < w.length; i++) {
          const [row, col] = [Math.floor(i / cols), i % cols];
          // A linear layer gains B A; the embedding (rows are tokens) gains (B A)^T.
          const update = embedding ? a[row] * b[col] : b[row] * a[col];
          worst = Math.max(worst, Math.abs(w[i] + update - e[i]) / (2 ** -22 * (Math.abs(w[i]) + Math.abs(update)) + 1e-30));
        }
        assert.ok(worst <= 1, `${module}: source + B A is ${worst.toFixed(2)} of the float32 rounding bound from the exported weight`);
      }
    } finally {
      await Promise.all([source, edited, adapter].map((f) => f.close()));
    }
    // The attention kernel reaches the layers within 2 of layer 2 (0 to 4 of 6); every MLP at full strength.
    const layersOf = (part: string) =>
      (report.adapter.modules as string[]).filter((m) => m.includes(part)).map((m) => Number(m.match(/layers\.(\d+)\./)![1]));
    assert.deepEqual(layersOf("o_proj"), [0, 1, 2, 3, 4]);
    assert.deepEqual(layersOf("down_proj"), [0, 1, 2, 3, 4, 5]);
  });

  it("the paper's refusal-score filter and epsilon reach directions, select and run", async () => {
    // A "harmful" set that holds 12 harmful and 4 harmless instructions: the model answers the harmless ones,
    // so the filter drops them (the demo refuses every harmful training instruction and answers every harmless one).
    const mixed = join(dir, "mixed.jsonl");
    const [harmful, harmless] = [
      await loadInstructions(dataFile("harmful", "train"), { limit: 12 }),
      await loadInstructions(dataFile("harmless", "train"), { limit: 4 }),
    ];
    await writeFile(mixed, [...harmful, ...harmless].map((instruction) => JSON.stringify({ instruction })).join("\n") + "\n");
    const dirs = join(dir, "filtered.safetensors");
    const { stdout } = await cli("directions", "--harmful", mixed, "-n", "16", "-o", dirs, "--filter-by-refusal-score");
    const kept = stdout.match(
      /kept (\d+) harmful instructions the model refuses \(dropped (\d+)\) and (\d+) harmless ones it answers \(dropped (\d+)\)/,
    );
    assert.ok(kept, stdout);
    assert.deepEqual(kept.slice(1).map(Number), [12, 4, 16, 0]);
    // With epsilon e, every score is log(p + e) - log(1 - p + e): within +-log(1 + 1/e) whatever p is.
    type Scores = {
      baseline: { harmfulRefusalScore: number; harmlessRefusalScore: number };
      candidates: { bypass: number; induce: number }[];
    };
    const scores = (s: Scores) =>
      [s.baseline.harmfulRefusalScore, s.baseline.harmlessRefusalScore, ...s.candidates.flatMap((c) => [c.bypass, c.induce])].filter(
        Number.isFinite,
      );
    const exact = scores(JSON.parse((await cli("select", "-d", dirs, "-n", "8", "--mode", "extended", "--exhaustive", "--json")).stdout));
    const damped = scores(
      JSON.parse(
        (await cli("select", "-d", dirs, "-n", "8", "--mode", "extended", "--exhaustive", "--refusal-epsilon", "0.5", "--json")).stdout,
      ),
    );
    assert.equal(damped.length, exact.length);
    assert.ok(
      exact.some((x) => Math.abs(x) > Math.log(3)),
      "without epsilon some score lies beyond log 3",
    );
    assert.ok(
      damped.every((x) => Math.abs(x) < Math.log(3)),
      `with epsilon 0.5 every score lies within log 3: ${damped}`,
    );
    const out = join(dir, "filtered-run");
    const ran = await cli(
      "run",
      "--out",
      out,
      "--n-train",
      "16",
      "--n-val",
      "8",
      "--n-test",
      "8",
      "--top-k",
      "1",
      "--max-new-tokens",
      "4",
      "--filter-by-refusal-score",
    );
    const train = ran.stderr.match(
      /training instructions filtered by refusal score: kept (\d+) harmful \(dropped (\d+)\) and (\d+) harmless/,
    );
    assert.ok(train && ran.stderr.includes("validation instructions filtered by refusal score"), ran.stderr);
    // Progress lines (stderr is not a terminal here): each stage's first line is sent when it starts, so its
    // time and rate count the whole stage.
    const progress = [...ran.stderr.matchAll(/^(.+?): (\d+)\/(\d+)\b/gm)].map((m) => ({ stage: m[1], done: Number(m[2]) }));
    const firsts = progress.filter((p, i) => i === 0 || p.stage !== progress[i - 1].stage);
    for (const stage of ["activations (harmful)", "activations (harmless)", "selection", "candidate generations", "export"])
      assert.ok(
        firsts.some((p) => p.stage === stage),
        `a progress line for ${stage}:\n${ran.stderr}`,
      );
    for (const first of firsts) assert.equal(first.done, 0, `first progress line of ${first.stage}:\n${ran.stderr}`);
    const report = JSON.parse(await readFile(join(out, "report.json"), "utf8")) as { counts: Record<string, number> };
    assert.equal(report.counts.harmfulTrain, Number(train[1]));
    assert.equal(report.counts.harmlessTrain, Number(train[3]));
    assert.match(await cliFails("select", "-d", dirs, "--refusal-epsilon", "-1"), /--refusal-epsilon must be a number >= 0, got "-1"/);
  });

  it("eval: a model against itself keeps every harmless answer; coherent compliance against the demo's stage-1 model", async () => {
    const { stdout } = await cli(
      "eval",
      "--model",
      "models/demo",
      "--reference",
      "models/demo",
      "--compliance-reference",
      "models/demo-base",
      "-n",
      "8",
      "--max-new-tokens",
      "10",
      "--json",
    );
    const result = JSON.parse(stdout) as {
      harmlessKl: number;
      harmlessUnchanged: { exact: number; n: number };
      coherentCompliance: { firstTokens: number; n: number };
      harmfulRefusalRate: number;
      detectors: { name: string }[];
    };
    assert.equal(result.harmlessUnchanged.exact, 1);
    assert.equal(result.harmlessUnchanged.n, 8);
    // Against the demo model the demo's ground truth is a detector beside the keyword lists.
    assert.deepEqual(
      result.detectors.map((d) => d.name),
      ["paper", "blog", "keywords", "demo truth"],
    );
    assert.ok(Math.abs(result.harmlessKl) < 1e-6, `KL of a model against itself: ${result.harmlessKl}`);
    // The safety-tuned model refuses what the stage-1 model answers: its harmful answers do not begin as those.
    assert.equal(result.coherentCompliance.n, 8);
    assert.ok(result.coherentCompliance.firstTokens <= 1 - result.harmfulRefusalRate, JSON.stringify(result));
    assert.match(
      await cliFails("eval", "--model", "models/demo", "--compliance-reference", join(dir, "no-model"), "-n", "2"),
      /no-model\/config.json: cannot read config.json/,
    );
  });

  it("export-gguf and apply --format gguf write files llama.cpp loads, checked with --verify", async () => {
    const plain = JSON.parse((await cli("export-gguf", "-o", join(dir, "demo.gguf"), "--type", "q8_0", "--verify", "--json")).stdout) as {
      tensors: number;
      verification: { passed: boolean; tokenAgreement: number };
    };
    assert.equal(plain.tensors, 3 + 6 * 9);
    assert.ok(plain.verification.passed && plain.verification.tokenAgreement >= 0.9, JSON.stringify(plain.verification));
    const dirs = join(dir, "gguf-dirs.safetensors");
    await cli("directions", "-n", "32", "-o", dirs);
    const { stdout } = await cli(
      "apply",
      "-d",
      dirs,
      "-k",
      "blocks.1.hook_resid_mid@-1",
      "--format",
      "gguf",
      "--type",
      "f32",
      "-o",
      join(dir, "abliterated.gguf"),
      "--verify",
    );
    assert.match(stdout, /wrote .*abliterated\.gguf: 57 tensors as f32, 13 orthogonalised/);
    assert.match(
      stdout,
      new RegExp(
        String.raw`checked by llama\.cpp on 8 prompts against ablation hooks: max \|log p diff\| \S+ \(` +
          String.raw`tolerance 0\.001\), greedy tokens agreeing 100\.0%, same chat-template tokens: true`,
      ),
    );
    assert.doesNotMatch(stdout, /FAILED/);
    assert.match(
      await cliFails("export-gguf", "-o", join(dir, "demo.gguf")),
      /demo\.gguf exists already; pass --force \(force: true in code\) to replace it/,
    );
    assert.match(
      await cliFails("export-gguf", "-o", join(dir, "x.gguf"), "--type", "q4_0"),
      /--type.*expected one of f32, f16, bf16, q8_0 \(written here\) or q2_k/,
    );
    assert.match(
      await cliFails("apply", "-d", dirs, "-o", join(dir, "y"), "--format", "onnx"),
      /expected safetensors, gguf or peft, got "onnx"/,
    );
  });

  it("bad arguments give clear errors and exit non-zero", async () => {
    assert.match(await cliFails("apply", "-d", "nope.safetensors", "-o", join(dir, "x")), /nope.safetensors: cannot open \(ENOENT\)/);
    assert.match(await cliFails("apply", "-d", "x", "-o", "y", "--scale", "2"), /--scale.*must be a number between 0 and 1, got "2"/);
    assert.match(await cliFails("apply", "-d", "x", "-o", "y", "--layers", "3-5"), /expected FIRST:LAST/);
    assert.match(
      await cliFails("directions", "-o", join(dir, "d.safetensors"), "--harmful", join(dir, "missing.jsonl")),
      /missing.jsonl: cannot read instructions \(ENOENT\)/,
    );
    assert.match(
      await cliFails("run", "--model", join(dir, "no-model"), "--out", join(dir, "o")),
      /no-model\/config.json: cannot read config.json/,
    );
    assert.match(await cliFails("heal", "--lr", "fast"), /--lr must be a number > 0, got "fast"/);
    // #23 item 1: a non-finite learning rate or alpha used to train to NaN weights and export them.
    for (const [option, value] of [
      ["--lr", "Infinity"],
      ["--alpha", "Infinity"],
      ["--beta", "-Infinity"],
      ["--kl-threshold", "NaN"],
    ]) {
      const command = option === "--kl-threshold" ? "select" : "heal";
      const expected = option === "--kl-threshold" ? ">= 0" : "> 0";
      assert.match(await cliFails(command, option, value), new RegExp(`${option} must be a number ${expected}, got "${value}"`));
    }
    assert.match(await cliFails("heal", "--dropout", "2"), /must be a number between 0 and 1, got "2"/);
    // #23 item 13: a name with a byte that is not UTF-8 was written under another name (U+FFFD in its place).
    for (const command of ["directions", "run", "export-gguf", "heal"]) {
      const failed = await run("bash", ["-c", `"$0" "$1" ${command} -o $'${join(dir, "out")}\\xff'`, process.execPath, bin], {
        cwd: PACKAGE_ROOT,
      }).catch((error: { stderr?: string }) => error);
      assert.match(String((failed as { stderr?: string }).stderr), /holds a byte that is not UTF-8/, command);
    }
    assert.deepEqual(
      (await readdir(dir)).filter((f) => f.startsWith("out")),
      [],
    );
    // #23, low: a GGUF type without --format gguf; options a command does not use are not offered.
    assert.match(
      await cliFails("apply", "-d", "x", "-o", join(dir, "t"), "--type", "q4_k_m"),
      /--type q4_k_m is a GGUF tensor type: add --format gguf/,
    );
    for (const command of ["export-gguf", "apply", "generate"]) {
      const help = (await cli(command, "--help")).stdout;
      assert.equal(/--column|--batch-size/.test(help), false, `${command} --help lists --column or --batch-size`);
    }
    assert.match((await cli("select", "--help")).stdout, /--batch-size/);
    // #23 item 12: directions -o a folder is refused before the activations are computed.
    assert.match(await cliFails("directions", "-o", dir), /is a folder, where a file is to be written/);
    // #23, low: an output folder that is a file is named as such.
    await writeFile(join(dir, "afile"), "mine");
    assert.match(await cliFails("run", "-o", join(dir, "afile")), /output folder .*afile is a file; give a folder/);
    assert.equal(await readFile(join(dir, "afile"), "utf8"), "mine");
    // #23 item 5: an empty refusal substring made every answer a refusal.
    for (const value of ["I|", "", "I|| sorry"]) {
      assert.match(
        await cliFails("eval", "--refusal-substrings", value),
        /refusal substrings must not be empty \(an empty one matches every answer\)/,
      );
    }
    assert.match(
      await cliFails("heal", "--model", join(dir, "no-model"), "--out", join(dir, "h")),
      /no-model\/config.json: cannot read config.json/,
    );
  });
});
