// Every notebook runs headless on the project's kernel (no Python), in order, and reproduces the key
// numbers its committed outputs show. (CI also runs them under real Jupyter: npm run test:jupyter.)
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it, before, after } from "node:test";
import { runNotebook, type Notebook } from "../scripts/notebooks/runner.ts";
import { keyNumbers } from "../scripts/notebooks/key-numbers.ts";
import { PACKAGE_ROOT } from "../src/paths.ts";

const dir = join(PACKAGE_ROOT, "notebooks");
const names = (await readdir(dir)).filter((f) => /^\d\d-.*\.ipynb$/.test(f)).sort();

describe("notebooks", () => {
  let out: string;
  before(async () => {
    out = await mkdtemp(join(tmpdir(), "abliterate-notebooks-"));
  });
  after(async () => {
    await rm(out, { recursive: true, force: true });
  });

  it("there is one notebook per stage, each naming the project's kernel", async () => {
    assert.ok(names.length >= 9, `found ${names.length} notebooks`);
    for (const name of names) {
      const nb = JSON.parse(await readFile(join(dir, name), "utf8")) as Notebook;
      assert.equal((nb.metadata.kernelspec as { name: string }).name, "abliterate", name);
    }
  });

  for (const name of names) {
    it(`${name} runs and reproduces its committed key numbers`, async () => {
      const committed = JSON.parse(await readFile(join(dir, name), "utf8")) as Notebook;
      const executed = await runNotebook(join(dir, name), { env: { ABLITERATE_NOTEBOOK_OUT: out } });
      assert.ok(committed.cells.some((c) => (c.outputs ?? []).length > 0), `${name} is committed without outputs: run npm run notebooks -- --write`);
      assert.deepEqual(keyNumbers(executed), keyNumbers(committed));
    });
  }
});
