// npm run notebooks: execute every notebook in notebooks/ in order on the project's kernel, headless,
// with no Python. Executed copies go to out/notebooks/; `--write` saves the outputs into the notebooks
// themselves (what is committed), in Jupyter's own normalised form; `--format` only normalises them. Both
// refresh each exercise's folded hint and solution (tools/notebooks/reveals.ts). A failing cell stops the run
// with the cell's error text.
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { parseArgs } from "node:util";
import { runNotebook, CellError } from "../../tools/notebooks/runner.ts";
import { ensureCellIds, notebookText } from "../../tools/notebooks/format.ts";
import { withReveals } from "../../tools/notebooks/reveals.ts";
import { PACKAGE_ROOT } from "../../src/paths.ts";
import { vendorPlotly } from "../../kernel/vendor.ts";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    write: { type: "boolean", default: false },
    format: { type: "boolean", default: false },
    out: { type: "string", default: join(PACKAGE_ROOT, "out", "notebooks") },
  },
});
const dir = join(PACKAGE_ROOT, "notebooks");
const notebooks =
  positionals.length > 0
    ? positionals
    : (await readdir(dir))
        .filter((f) => /^\d\d-.*\.ipynb$/.test(f))
        .sort()
        .map((f) => join(dir, f));
if (values.format) {
  // --format: rewrite the notebooks as Jupyter saves them (cell ids, normalised JSON) without running them,
  // after editing their JSON by hand or with a script.
  for (const path of notebooks) {
    const notebook = withReveals(JSON.parse(await readFile(path, "utf8")));
    ensureCellIds(notebook);
    await writeFile(path, notebookText(notebook));
    console.log(`formatted ${basename(path)}`);
  }
  process.exit(0);
}
await mkdir(values.out!, { recursive: true });
await vendorPlotly(); // for the plots' HTML fallback when the notebooks are opened afterwards
for (const path of notebooks) {
  const started = performance.now();
  process.stdout.write(`${basename(path)} ... `);
  try {
    const executed = withReveals(await runNotebook(path));
    const target = values.write ? path : join(values.out!, basename(path));
    await writeFile(target, notebookText(executed));
    console.log(`ok (${((performance.now() - started) / 1000).toFixed(0)} s) -> ${target}`);
  } catch (error) {
    console.log("FAILED");
    console.error(error instanceof CellError ? error.message : error);
    process.exit(1);
  }
}
