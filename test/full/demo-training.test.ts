// A short training smoke test: from the fixed seed, a few steps of each stage lower the loss.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cp, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { DEMO_BASE_MODEL_DIR, PACKAGE_ROOT } from "../../src/paths.ts";

/** `npm run demo:train -- ...args`, run to its end. */
const train = (args: string[], timeout = 300_000) =>
  spawnSync(process.execPath, ["--import", "tsx", join(PACKAGE_ROOT, "scripts", "demo", "train.ts"), ...args], {
    cwd: PACKAGE_ROOT,
    encoding: "utf8",
    timeout,
  });

/** The output of a run that must succeed, and its losses (the last line of a --quick run). */
function trained(args: string[]): { output: string; stage1: number[]; stage2: number[] } {
  const run = train(args);
  assert.equal(run.status, 0, run.stderr);
  return { output: run.stdout, ...(JSON.parse(run.stdout.trim().split("\n").pop()!) as { stage1: number[]; stage2: number[] }) };
}

/** Runs `body` on a fresh output folder, removed after. */
async function inFolder(body: (out: string) => Promise<void>, withBase = false): Promise<void> {
  const out = await mkdtemp(join(tmpdir(), "abliterate-train-"));
  try {
    if (withBase) await cp(DEMO_BASE_MODEL_DIR, join(out, "demo-base"), { recursive: true });
    await body(out);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}

describe("demo training (npm run demo:train -- --quick)", () => {
  it("a few steps of instruction tuning and of safety tuning lower the loss", () => {
    const { stage1, stage2 } = trained(["--quick"]);
    assert.equal(stage1.length, 5);
    assert.equal(stage2.length, 5);
    assert.ok(stage1[4] < stage1[0], `stage 1 loss went from ${stage1[0]} to ${stage1[4]}`);
    assert.ok(stage2[4] < stage2[0], `stage 2 loss went from ${stage2[0]} to ${stage2[4]}`);
    assert.ok(stage1[0] > 6 && stage1[0] < 8, `a fresh model's loss should be near ln(1024) = 6.93, got ${stage1[0]}`);
  });

  it("--everyday --match-answers --reverse-kl (the experiments of docs/demo-model.md): 2048 tokens, the loss falls in both stages", () => {
    const { output, stage1, stage2 } = trained(["--quick", "--everyday", "--match-answers", "--reverse-kl", "1"]);
    assert.match(output, /^tokenizer: 2048 tokens,/m);
    assert.ok(stage1[4] < stage1[0], `stage 1 loss went from ${stage1[0]} to ${stage1[4]}`);
    assert.ok(stage2[4] < stage2[0], `stage 2 loss went from ${stage2[0]} to ${stage2[4]}`);
    assert.ok(stage1[0] > 7 && stage1[0] < 8.3, `a fresh model's loss should be near ln(2048) = 7.62, got ${stage1[0]}`);
  });

  it("--reserved-direction: stage 1 writes nothing along it, and ablating it after stage 2 gives back the stage-1 model", () => {
    const { output, stage1 } = trained(["--quick", "--reserved-direction"]);
    const written = Number(/^stage 1 writes along the reserved direction: (\S+) of its largest row$/m.exec(output)?.[1]);
    assert.ok(written < 1e-6, `stage 1 writes ${written} of its largest row along the reserved direction`);
    const gap = Number(/^the reserved direction ablated, largest \|logit difference\| from the stage-1 model: (\S+)$/m.exec(output)?.[1]);
    assert.ok(gap < 1e-4, `ablating the reserved direction leaves logits ${gap} from the stage-1 model's`);
    assert.ok(stage1[4] < stage1[0], `stage 1 loss went from ${stage1[0]} to ${stage1[4]}`);
  });

  it("--from-base with --everyday or --reserved-direction on a base trained without it is refused, nothing written", async () => {
    for (const [flag, expected] of [
      ["--everyday", /demo-base: vocab_size 1024, but this run trains with 2048 tokens: the base was trained without --everyday/],
      [
        "--reserved-direction",
        /demo-base: its weights write along the reserved direction: the base was trained without --reserved-direction/,
      ],
    ] as const) {
      await inFolder(async (out) => {
        const run = train(["--quick", "--from-base", flag, "--out", out]);
        assert.notEqual(run.status, 0, `${flag} was accepted`);
        assert.match(run.stderr, expected);
        assert.deepEqual(await readdir(out), ["demo-base"]);
      }, true);
    }
  });

  it("a numeric option that is not a number in range is refused, naming it, before anything is written", async () => {
    await inFolder(async (out) => {
      for (const [option, value, expected] of [
        ["--reverse-kl", "abc", /--reverse-kl: expected a number >= 0, got "abc"/],
        ["--stage1-lr", "-1", /--stage1-lr: expected a number >= 0, got "-1"/],
        ["--batch-size", "0", /--batch-size: expected a whole number >= 1, got "0"/],
        ["--stage2-epochs", "2.5", /--stage2-epochs: expected a whole number >= 0, got "2.5"/],
      ] as const) {
        const run = train(["--out", out, `${option}=${value}`], 60_000);
        assert.notEqual(run.status, 0, `${option} ${value} was accepted`);
        assert.match(run.stderr, expected);
        assert.deepEqual(await readdir(out), [], `${option} ${value}: something was written`);
      }
    });
  });
});
