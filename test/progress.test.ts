// Progress on stderr when it is not a terminal: a line when a stage starts and ends, and at most one per interval between.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { lineReporter } from "../src/cli/progress.ts";

describe("progress lines for logs", () => {
  it("print the first and last update of each stage and throttle the rest", () => {
    const lines: string[] = [];
    const report = lineReporter(60_000, (l) => lines.push(l));
    for (let i = 1; i <= 10; i++) report.update("activations (harmful)", i, 10, `${i * 7} tokens`);
    report.update("selection", 0, 4);
    assert.equal(lines.length, 3);
    assert.match(lines[0], /^activations \(harmful\): 1\/10 \(7 tokens\), 0 s(, ETA \d+ s)?$/);
    assert.match(lines[1], /^activations \(harmful\): 10\/10 \(70 tokens\), 0 s$/);
    assert.match(lines[2], /^selection: 0\/4, 0 s$/);
  });
  it("an update with the same counts as the last line prints nothing (work counted in rounded units)", () => {
    const lines: string[] = [];
    const report = lineReporter(0, (l) => lines.push(l));
    for (const done of [0, 988, 988, 988]) report.update("export", done, 988, "MB");
    report.update("generations", 0, 4);
    report.update("export", 988, 988, "MB");
    assert.deepEqual(
      lines.map((l) => l.replace(/, \d+ s.*$/, "")),
      ["export: 0/988 (MB)", "export: 988/988 (MB)", "generations: 0/4", "export: 988/988 (MB)"],
    );
  });
  it("with no interval, every update", () => {
    const lines: string[] = [];
    const report = lineReporter(0, (l) => lines.push(l));
    for (let i = 1; i <= 3; i++) report.update("export", i, 3);
    assert.equal(lines.length, 3);
  });
});
