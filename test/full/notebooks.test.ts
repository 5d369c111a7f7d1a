// Every notebook runs headless on the project's kernel (no Python), in order, and reproduces the key
// numbers its committed outputs show. (CI also runs them under real Jupyter: npm run test:jupyter.)
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it, before, after } from "node:test";
import { runNotebook, type Notebook } from "../../tools/notebooks/runner.ts";
import { keyNumbers } from "../../tools/notebooks/key-numbers.ts";
import { notebookText } from "../../tools/notebooks/format.ts";
import { PACKAGE_ROOT } from "../../src/paths.ts";

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

  it("every notebook is committed as Jupyter saves it: normalised JSON, cell ids, the kernel's language_info", async () => {
    for (const name of names) {
      const text = await readFile(join(dir, name), "utf8");
      const nb = JSON.parse(text) as Notebook;
      assert.equal(notebookText(nb), text, `${name} is not in Jupyter's normalised form: run npm run notebooks -- --write`);
      const ids = nb.cells.map((c) => c.id);
      assert.ok(
        ids.every((id) => typeof id === "string" && /^[\w-]{1,64}$/.test(id)),
        `${name}: a cell without a valid id`,
      );
      assert.equal(new Set(ids).size, ids.length, `${name}: duplicate cell ids`);
      const info = nb.metadata.language_info as Record<string, unknown>;
      for (const field of ["name", "version", "mimetype", "file_extension", "codemirror_mode"])
        assert.ok(info?.[field] !== undefined, `${name}: language_info.${field} missing`);
    }
  });

  it("every committed figure carries a static picture, and outputs name no path of the machine that ran them", async () => {
    let figures = 0;
    for (const name of names) {
      const nb = JSON.parse(await readFile(join(dir, name), "utf8")) as Notebook;
      for (const [i, cell] of nb.cells.entries()) {
        for (const out of cell.outputs ?? []) {
          const shown = JSON.stringify(out);
          const path = shown.includes(PACKAGE_ROOT)
            ? PACKAGE_ROOT
            : shown.match(/(?<![\w.])\/(home|root|tmp|work|Users|mnt|var)\/[\w.-]+/)?.[0];
          assert.equal(path, undefined, `${name}, cell ${i + 1} shows the path ${path} of the machine that ran it`);
          const data = out.data as Record<string, unknown> | undefined;
          if (!data?.["application/vnd.plotly.v1+json"]) continue;
          figures++;
          const svg = [data["image/svg+xml"] ?? ""].flat().join("");
          const html = [data["text/html"] ?? ""].flat().join("");
          assert.ok(
            svg.startsWith("<svg") && /<g data-trace="\d+">\s*(<g [^>]*>\s*)?<(rect|path|circle) /.test(svg),
            `${name}, cell ${i + 1}: no static SVG picture, or one that draws no data`,
          );
          assert.ok(
            html.includes(`src="data:image/svg+xml;base64,${Buffer.from(svg).toString("base64")}"`),
            `${name}, cell ${i + 1}: the HTML fallback does not show the same picture`,
          );
        }
      }
    }
    assert.ok(figures >= 10, `only ${figures} figures in the notebooks`);
  });

  for (const name of names) {
    it(`${name} runs and reproduces its committed key numbers`, async () => {
      const committed = JSON.parse(await readFile(join(dir, name), "utf8")) as Notebook;
      const executed = await runNotebook(join(dir, name), { env: { ABLITERATE_NOTEBOOK_OUT: out } });
      assert.ok(
        committed.cells.some((c) => (c.outputs ?? []).length > 0),
        `${name} is committed without outputs: run npm run notebooks -- --write`,
      );
      assert.ok(
        keyNumbers(committed).length > 0,
        `${name} prints none of the key numbers (tools/notebooks/key-numbers.ts) the test compares`,
      );
      assert.deepEqual(keyNumbers(executed), keyNumbers(committed));
      // With the solutions on, every check passes and says the solution was used.
      const defined = exercisesIn(executed);
      assert.deepEqual(
        printed(executed).filter((l) => /^PASS exercise \w+: solution used: /.test(l)).length,
        defined.length,
        `${name}: not every exercise check passed with its solution`,
      );
    });
  }
});

/** The exercises a notebook defines (`exercise("name", ...)` in its code cells), in order. */
function exercisesIn(notebook: Notebook): string[] {
  return notebook.cells
    .filter((c) => c.cell_type === "code")
    .flatMap((c) =>
      [
        ...[c.source]
          .flat()
          .join("")
          .matchAll(/\bexercise\("(\w+)"/g),
      ].map((m) => m[1]),
    );
}

/** Every line the notebook printed on stdout. */
function printed(notebook: Notebook): string[] {
  return notebook.cells.flatMap((c) =>
    (c.outputs ?? []).filter((o) => o.output_type === "stream").flatMap((o) => [o.text as string | string[]].flat().join("").split("\n")),
  );
}

describe("notebooks with their exercises as committed (not written): Run All completes (#27)", () => {
  let out: string;
  before(async () => {
    out = await mkdtemp(join(tmpdir(), "abliterate-notebooks-open-"));
  });
  after(async () => {
    await rm(out, { recursive: true, force: true });
  });
  for (const name of names) {
    it(`${name}: every cell runs, each check says "not done yet" with its hint`, async () => {
      // runNotebook fails on the first cell that raises, as Jupyter's Run All stops there.
      const executed = await runNotebook(join(dir, name), { env: { ABLITERATE_SOLUTIONS: "0", ABLITERATE_NOTEBOOK_OUT: out } });
      const errors = executed.cells.flatMap((c) => (c.outputs ?? []).filter((o) => o.output_type === "error"));
      assert.deepEqual(errors, [], `${name}: error output`);
      const defined = exercisesIn(executed);
      const open = printed(executed)
        .map((l) => /^OPEN exercise (\w+): not done yet\. Hint: \S/.exec(l)?.[1])
        .filter((n) => n !== undefined);
      assert.deepEqual(open, defined, `${name}: the checks that said "not done yet"`);
      if (defined.length > 0)
        assert.ok(
          printed(executed).some((l) => l === `exercises: 0 of ${defined.length} done; still open: ${defined.join(", ")}`),
          `${name}: no summary of the open exercises`,
        );
    });
  }
});
