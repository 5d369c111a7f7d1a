// Registers the project's Jupyter kernel ("TypeScript (abliterate)") for the current user, and copies
// plotly.js beside the notebooks for their HTML plot fallback.
// Run: npm run kernel:install [-- --prefix DIR]   (DIR/share/jupyter/kernels, like `jupyter kernelspec install --prefix`)
import { mkdir, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { kernelSpec, KERNEL_NAME } from "./kernel-spec.ts";
import { vendorPlotly } from "./vendor.ts";

/** Jupyter's per-user data folder (JUPYTER_DATA_DIR, else the platform's default). */
function userKernelsDir(): string {
  if (process.env.JUPYTER_DATA_DIR) return join(process.env.JUPYTER_DATA_DIR, "kernels");
  if (process.platform === "darwin") return join(homedir(), "Library", "Jupyter", "kernels");
  if (process.platform === "win32") return join(process.env.APPDATA ?? homedir(), "jupyter", "kernels");
  return join(process.env.XDG_DATA_HOME ?? join(homedir(), ".local", "share"), "jupyter", "kernels");
}

const { values } = parseArgs({ options: { prefix: { type: "string" } } });
const dir = join(values.prefix ? join(values.prefix, "share", "jupyter", "kernels") : userKernelsDir(), KERNEL_NAME);
await mkdir(dir, { recursive: true });
await writeFile(join(dir, "kernel.json"), JSON.stringify(kernelSpec(), null, 2) + "\n");
console.log(`installed the Jupyter kernel "${KERNEL_NAME}" in ${dir}`);
console.log(`copied plotly.js to ${await vendorPlotly()}`);
