// npm run notebooks: execute every notebook in notebooks/ in order on the project's kernel, headless,
// with no Python. Executed copies go to out/notebooks/; `--write` saves the outputs into the notebooks
// themselves (what is committed). A failing cell stops the run with the cell's error text.
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { parseArgs } from "node:util";
import { runNotebook, CellError } from "./runner.ts";
import { notebookText } from "./format.ts";
import { PACKAGE_ROOT } from "../../src/paths.ts";
import { vendorPlotly } from "../../kernel/vendor.ts";

const { values, positionals } = parseArgs({ allowPositionals: true, options: { write: { type: "boolean", default: false }, out: { type: "string", default: join(PACKAGE_ROOT, "out", "notebooks") } } });
const dir = join(PACKAGE_ROOT, "notebooks");
const notebooks = positionals.length > 0 ? positionals : (await readdir(dir)).filter((f) => /^\d\d-.*\.ipynb$/.test(f)).sort().map((f) => join(dir, f));
await mkdir(values.out!, { recursive: true });
await vendorPlotly(); // for the plots' HTML fallback when the notebooks are opened afterwards
for (const path of notebooks) {
  const started = performance.now();
  process.stdout.write(`${basename(path)} ... `);
  try {
    const executed = await runNotebook(path);
    const target = values.write ? path : join(values.out!, basename(path));
    await writeFile(target, notebookText(executed));
    console.log(`ok (${((performance.now() - started) / 1000).toFixed(0)} s) -> ${target}`);
  } catch (error) {
    console.log("FAILED");
    console.error(error instanceof CellError ? error.message : error);
    process.exit(1);
  }
}
