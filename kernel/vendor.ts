// plotly.js beside the notebooks, for their HTML plot fallback (ignored by git, copied from the
// plotly.js-dist-min package by `npm run kernel:install` and `npm run notebooks`).
import { copyFile, mkdir } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { PACKAGE_ROOT } from "../src/paths.ts";
import { VENDOR_PLOTLY } from "../src/notebook/plotly-html.ts";

export async function vendorPlotly(notebooksDir = join(PACKAGE_ROOT, "notebooks")): Promise<string> {
  const target = join(notebooksDir, VENDOR_PLOTLY);
  await mkdir(dirname(target), { recursive: true });
  await copyFile(createRequire(import.meta.url).resolve("plotly.js-dist-min"), target);
  return target;
}
