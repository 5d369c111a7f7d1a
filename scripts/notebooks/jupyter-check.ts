// CI check of the notebooks under real Jupyter: each committed notebook is what Jupyter's nbformat writes
// back (opening and saving changes nothing); execute each with `jupyter nbconvert --execute` on the
// project's kernel twice, with the exercises' solutions and with the exercises as committed (Run All must
// complete, every check saying "not done yet"), export HTML, open it in headless Chromium and check that every plot rendered with
// the traces its notebook output declares; open it again with JavaScript off and check that every
// figure's static picture shows instead, and that no static picture is blank. Needs Debian's
// jupyter-nbconvert, jupyter-client and chromium.
// Run: npm run test:jupyter
import { execFileSync } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { chromium } from "playwright-core";
import { PACKAGE_ROOT } from "../../src/paths.ts";
import { KERNEL_NAME } from "../../kernel/kernel-spec.ts";
import { vendorPlotly } from "../../kernel/vendor.ts";
import { SOLUTIONS_SWITCH } from "../../src/notebook/exercises.ts";

const JUPYTER = process.env.JUPYTER ?? "/usr/bin/jupyter";
// The kernels nbconvert starts inherit this: exercises run with their solutions (src/notebook/exercises.ts).
process.env[SOLUTIONS_SWITCH] ??= "1";
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const notebooksDir = join(PACKAGE_ROOT, "notebooks");
const executedDir = join(PACKAGE_ROOT, "out", "notebooks-jupyter");
const htmlDir = join(PACKAGE_ROOT, "out", "notebooks-html");
await vendorPlotly(htmlDir);

const PYTHON = process.env.JUPYTER_PYTHON ?? "/usr/bin/python3"; // the Python that Debian's Jupyter runs on

/** The committed notebook as Jupyter's own nbformat reads and writes it: opening and saving must change nothing. */
function jupyterRoundTrip(path: string): string {
  return execFileSync(
    PYTHON,
    ["-c", "import nbformat, sys; nb = nbformat.read(sys.argv[1], as_version=4); " + "sys.stdout.write(nbformat.writes(nb) + '\\n')", path],
    { encoding: "utf8" },
  );
}

/** Share of an image's pixels that are coloured (not white, grey or black): 0 for a blank picture. */
async function colouredShare(page: import("playwright-core").Page, svg: string): Promise<number> {
  return page.evaluate(
    async (src) => {
      const img = new Image();
      img.src = src;
      await img.decode();
      const canvas = document.createElement("canvas");
      [canvas.width, canvas.height] = [img.naturalWidth, img.naturalHeight];
      const ctx = canvas.getContext("2d")!;
      ctx.drawImage(img, 0, 0);
      const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
      let coloured = 0;
      for (let i = 0; i < data.length; i += 4)
        if (Math.max(data[i], data[i + 1], data[i + 2]) - Math.min(data[i], data[i + 1], data[i + 2]) > 40) coloured++;
      return coloured / (data.length / 4);
    },
    `data:image/svg+xml;base64,${Buffer.from(svg).toString("base64")}`,
  );
}

const only = process.argv.slice(2);
const names = (await readdir(notebooksDir)).filter((f) => /^\d\d-.*\.ipynb$/.test(f) && (only.length === 0 || only.includes(f))).sort();
const failures: string[] = [];
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
try {
  const staticPage = await browser.newPage();
  const noScript = await browser.newContext({ javaScriptEnabled: false });
  for (const name of names) {
    const started = performance.now();
    const committed = await readFile(join(notebooksDir, name), "utf8");
    if (jupyterRoundTrip(join(notebooksDir, name)) !== committed)
      failures.push(`${name}: Jupyter would rewrite the committed ` + `file on opening and saving it (run npm run notebooks -- --write)`);
    try {
      execFileSync(
        JUPYTER,
        [
          "nbconvert",
          "--to",
          "notebook",
          "--execute",
          `--ExecutePreprocessor.kernel_name=${KERNEL_NAME}`,
          "--ExecutePreprocessor.timeout=900",
          "--output-dir",
          executedDir,
          join(notebooksDir, name),
        ],
        { stdio: "pipe" },
      );
    } catch (error) {
      const stderr = String((error as { stderr?: Buffer }).stderr ?? error);
      failures.push(`${name}: jupyter nbconvert --execute failed:\n${stderr.slice(-3000)}`);
      continue;
    }
    execFileSync(JUPYTER, ["nbconvert", "--to", "html", "--output-dir", htmlDir, join(executedDir, name)], { stdio: "pipe" });
    // Expected traces of every plot, from the notebook's own plotly outputs.
    const notebook = JSON.parse(await readFile(join(executedDir, name), "utf8"));
    const expected: { traces: number; title: string; svg: string }[] = [];
    for (const cell of notebook.cells)
      for (const out of cell.outputs ?? []) {
        const spec = out.data?.["application/vnd.plotly.v1+json"];
        if (spec)
          expected.push({
            traces: spec.data.length,
            title: spec.layout?.title?.text ?? "",
            svg: [out.data["image/svg+xml"] ?? ""].flat().join(""),
          });
      }
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(pathToFileURL(join(htmlDir, name.replace(/\.ipynb$/, ".html"))).href);
    await page
      .waitForFunction((n) => document.querySelectorAll(".abliterate-plot.js-plotly-plot").length >= n, expected.length, {
        timeout: 30_000,
      })
      .catch(() => {});
    const rendered = await page.evaluate(() =>
      [...document.querySelectorAll(".abliterate-plot")].map((el) => ({
        traces: ((el as unknown as { data?: unknown[] }).data ?? []).length,
        svg: el.querySelectorAll("svg.main-svg").length > 0,
        title: el.querySelector(".gtitle")?.textContent ?? "",
      })),
    );
    await page.close();
    // Where no script runs (GitHub, nbviewer, an untrusted notebook): the static picture shows instead.
    const bare = await noScript.newPage();
    await bare.goto(pathToFileURL(join(htmlDir, name.replace(/\.ipynb$/, ".html"))).href);
    const pictures = await bare.evaluate(() =>
      [...document.querySelectorAll(".abliterate-plot " + "img")].map(
        (img) => (img as HTMLImageElement).complete && (img as HTMLImageElement).naturalWidth > 0,
      ),
    );
    await bare.close();
    const problems: string[] = [...errors.map((e) => `page error: ${e}`)];
    if (pictures.length !== expected.length || pictures.some((shown) => !shown))
      problems.push(`without JavaScript, ` + `${pictures.filter(Boolean).length} of ${expected.length} static pictures show`);
    for (const [i, e] of expected.entries()) {
      const share = e.svg ? await colouredShare(staticPage, e.svg) : 0;
      if (share < 0.002)
        problems.push(
          `plot ${i + 1} ("${e.title}"): its static picture is ` +
            `${e.svg ? "blank" : "missing"} (${(100 * share).toFixed(2)}% coloured pixels)`,
        );
    }
    if (rendered.length !== expected.length) problems.push(`${expected.length} plots in the notebook, ${rendered.length} in the HTML`);
    expected.forEach((e, i) => {
      const r = rendered[i];
      if (!r || !r.svg) problems.push(`plot ${i + 1} ("${e.title}") did not render`);
      else if (r.traces !== e.traces || e.traces === 0)
        problems.push(`plot ${i + 1} ("${e.title}") has ${r.traces} traces, ` + `expected ${e.traces}`);
    });
    if (problems.length > 0) failures.push(`${name}: ${problems.join("; ")}`);
    console.log(
      `${name}: executed by Jupyter, ${rendered.length} plot(s) rendered in Chromium, ` +
        `${pictures.filter(Boolean).length} static picture(s) shown without JavaScript ${
          problems.length ? "WITH " + "PROBLEMS" : "ok"
        } (${((performance.now() - started) / 1000).toFixed(0)} s)`,
    );
  }
  await noScript.close();
} finally {
  await browser.close();
}

// Run All as a class meets the notebooks: exercises as committed (not written), solutions off. Every notebook
// must execute to the end (nbconvert stops at the first cell that raises, as Run All does), and each
// exercise's check must say "not done yet" with its hint.
const openOut = join(PACKAGE_ROOT, "out", "notebooks-run-open");
const openExecutedDir = join(PACKAGE_ROOT, "out", "notebooks-jupyter-open");
for (const name of names) {
  const started = performance.now();
  try {
    execFileSync(
      JUPYTER,
      [
        "nbconvert",
        "--to",
        "notebook",
        "--execute",
        `--ExecutePreprocessor.kernel_name=${KERNEL_NAME}`,
        "--ExecutePreprocessor.timeout=900",
        "--output-dir",
        openExecutedDir,
        join(notebooksDir, name),
      ],
      { stdio: "pipe", env: { ...process.env, [SOLUTIONS_SWITCH]: "0", ABLITERATE_NOTEBOOK_OUT: openOut } },
    );
  } catch (error) {
    const stderr = String((error as { stderr?: Buffer }).stderr ?? error);
    failures.push(`${name} with its exercises not written: Run All stopped:\n${stderr.slice(-3000)}`);
    continue;
  }
  const notebook = JSON.parse(await readFile(join(openExecutedDir, name), "utf8")) as {
    cells: { cell_type: string; source: string | string[]; outputs?: { output_type: string; text?: string | string[] }[] }[];
  };
  const defined = notebook.cells
    .filter((c) => c.cell_type === "code")
    .flatMap((c) =>
      [
        ...[c.source]
          .flat()
          .join("")
          .matchAll(/\bexercise\("(\w+)"/g),
      ].map((m) => m[1]),
    );
  const lines = notebook.cells.flatMap((c) =>
    (c.outputs ?? []).filter((o) => o.output_type === "stream").flatMap((o) => [o.text ?? ""].flat().join("").split("\n")),
  );
  const open = lines.map((l) => /^OPEN exercise (\w+): not done yet\. Hint: \S/.exec(l)?.[1]).filter((n) => n !== undefined);
  const errors = notebook.cells.flatMap((c) => (c.outputs ?? []).filter((o) => o.output_type === "error"));
  if (errors.length > 0 || open.join(",") !== defined.join(","))
    failures.push(
      `${name} with its exercises not written: ${errors.length} error output(s); checks saying "not done yet": ` +
        `${open.join(", ") || "none"}, exercises defined: ${defined.join(", ") || "none"}`,
    );
  console.log(
    `${name}: Run All with the exercises not written completed, ${open.length} check(s) said "not done yet" ` +
      `(${((performance.now() - started) / 1000).toFixed(0)} s)`,
  );
}
if (failures.length > 0) {
  console.error(failures.join("\n\n"));
  process.exit(1);
}
console.log(`${names.length} notebooks executed under Jupyter; HTML exports in ${htmlDir}`);
