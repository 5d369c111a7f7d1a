// The code's form: every TypeScript file as Prettier writes it (.prettierrc.json), and no line over 140 characters.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as prettier from "prettier";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const MAX_LINE = 140;
const files = execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard", "*.ts"], { cwd: ROOT, encoding: "utf8" })
  .split("\n")
  .filter((f) => f && !f.startsWith("test/fixtures/") && !f.startsWith("node_modules/"));

/** Lines of `text` longer than `max`, as "line N (M characters)". */
export function longLines(text: string, max = MAX_LINE): string[] {
  return text.split("\n").flatMap((line, i) => (line.length > max ? [`line ${i + 1} (${line.length} characters)`] : []));
}

describe("code form", () => {
  it("finds the project's TypeScript files", () => {
    assert.ok(files.length > 100, `only ${files.length} files`);
    assert.ok(files.includes("src/index.ts"));
  });

  it(`no line is longer than ${MAX_LINE} characters`, () => {
    const long = files.flatMap((f) => longLines(readFileSync(join(ROOT, f), "utf8")).map((l) => `${f}: ${l}`));
    assert.deepEqual(long, []);
    assert.deepEqual(longLines(`short\n${"x".repeat(MAX_LINE + 1)}`), [`line 2 (${MAX_LINE + 1} characters)`]);
  });

  it("every file is as Prettier formats it (npx prettier --write . fixes it)", async () => {
    const unformatted: string[] = [];
    for (const f of files) {
      const options = await prettier.resolveConfig(join(ROOT, f));
      if (!(await prettier.check(readFileSync(join(ROOT, f), "utf8"), { ...options, filepath: join(ROOT, f) }))) unformatted.push(f);
    }
    assert.deepEqual(unformatted, []);
    assert.equal(await prettier.check("const a   = 1\n", { filepath: "x.ts" }), false, "the check sees a badly formatted line");
  });
});
