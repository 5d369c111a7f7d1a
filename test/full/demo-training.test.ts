// A short training smoke test: from the fixed seed, a few steps of each stage lower the loss.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, it } from "node:test";
import { PACKAGE_ROOT } from "../../src/paths.ts";

describe("demo training (npm run demo:train -- --quick)", () => {
  it("a few steps of instruction tuning and of safety tuning lower the loss", () => {
    const output = execFileSync(process.execPath, ["--import", "tsx", join(PACKAGE_ROOT, "scripts", "demo", "train.ts"), "--quick"], {
      cwd: PACKAGE_ROOT,
      encoding: "utf8",
      timeout: 300_000,
    });
    const { stage1, stage2 } = JSON.parse(output.trim().split("\n").pop()!) as { stage1: number[]; stage2: number[] };
    assert.equal(stage1.length, 5);
    assert.equal(stage2.length, 5);
    assert.ok(stage1[4] < stage1[0], `stage 1 loss went from ${stage1[0]} to ${stage1[4]}`);
    assert.ok(stage2[4] < stage2[0], `stage 2 loss went from ${stage2[0]} to ${stage2[4]}`);
    assert.ok(stage1[0] > 6 && stage1[0] < 8, `a fresh model's loss should be near ln(1024) = 6.93, got ${stage1[0]}`);
  });
});
