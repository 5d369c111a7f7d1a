// Where a decode step's time goes: a random model with Qwen2.5-0.5B's shapes (bf16 checkpoint, held in its bf16
// as the loader does by default, or as float32 with DECODE_PROFILE_PRECISION=float32) on the native BLAS path, one prompt of 64 tokens then
// greedy steps, profiled kernel by kernel with tf.profile.
// Prints, per decode step: the wall time without the profiler, the kernels dispatched, the time inside the
// weight products (the compiled decoding kernel, or sgemm without it, on the weights outside the heap: one pass
// over every weight), the lm_head's share of
// them, every other kernel, and what is left outside kernels (JavaScript:
// dispatch, tensor bookkeeping). Then the ceiling a decoder streaming the same weights could reach: the
// weights' bytes as held over this machine's read bandwidth (tools/bandwidth.ts: BLAS's sasum over 1 GiB).
// Run: npm run bench:decode   (DECODE_PROFILE_SHAPE=smollm2-135m for the small model; DECODE_PROFILE_STEPS=16;
// DECODE_PROFILE_PRECISION=float32)
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { backendInfo, initBackend, loadModel } from "../src/index.ts";
import { parseWeightPrecision } from "../src/load.ts";
import { readBandwidthGBs } from "../tools/bandwidth.ts";
import { writeRandomCheckpoint } from "../tools/random-checkpoint.ts";
import { QWEN25_05B_SHAPES, SMOLLM2_135M_SHAPES } from "../tools/shapes.ts";

const SHAPES = { "qwen2.5-0.5b": QWEN25_05B_SHAPES, "smollm2-135m": SMOLLM2_135M_SHAPES } as const;
const shapeName = (process.env.DECODE_PROFILE_SHAPE ?? "qwen2.5-0.5b") as keyof typeof SHAPES;
if (!SHAPES[shapeName]) throw new Error(`DECODE_PROFILE_SHAPE: one of ${Object.keys(SHAPES).join(", ")}, got "${shapeName}"`);
const STEPS = Number(process.env.DECODE_PROFILE_STEPS ?? 16);
const PROMPT = 64;
const precisionSetting = process.env.DECODE_PROFILE_PRECISION;
// Unset: the loader's default (bf16 as stored on this path).
const precision = precisionSetting ? parseWeightPrecision(precisionSetting, "DECODE_PROFILE_PRECISION") : undefined;

interface KernelTotals {
  count: number;
  ms: Map<string, number>;
  calls: Map<string, number>;
}

/** Kernels dispatched while `fn` runs, and their time by name (tf.profile; the wasm backend's kernels are synchronous). */
async function kernelsOf(fn: () => Promise<unknown>): Promise<KernelTotals> {
  const info = await tf.profile(async () => {
    await fn();
  });
  const ms = new Map<string, number>();
  const calls = new Map<string, number>();
  // A custom gradient's scope is listed as a kernel too ("unnamed scope"): the kernels inside it are counted already.
  for (const k of info.kernels.filter((k) => k.name !== "unnamed scope")) {
    // A native weight product whose output is the vocabulary wide is the lm_head.
    const name = k.name === "AbliterateNativeLinear" && k.outputShapes[0]?.at(-1) === vocab ? "lm_head (native product)" : k.name;
    ms.set(name, (ms.get(name) ?? 0) + (k.kernelTimeMs as number));
    calls.set(name, (calls.get(name) ?? 0) + 1);
  }
  return { count: [...calls.values()].reduce((a, b) => a + b, 0), ms, calls };
}

const backend = await initBackend({ backend: "wasm" });
const blas = (await backendInfo()).blas;
if (!blas) throw new Error("the decode profile is of the native BLAS path: install libopenblas0-pthread (Debian/Ubuntu)");
const dir = await mkdtemp(join(tmpdir(), "abliterate-decode-profile-"));
let vocab = 0;
try {
  const config = await writeRandomCheckpoint(dir, SHAPES[shapeName], { dtype: "BF16" });
  vocab = config.vocab_size;
  const model = await loadModel(dir, { precision });
  const prompt = [Array.from({ length: PROMPT }, (_, t) => (t * 7919 + 3) % vocab)];
  const generate = (steps: number) => model.generate(prompt, { maxNewTokens: steps, stopTokens: [] });
  await generate(2); // warm-up
  // Wall time without the profiler: (1 + STEPS) new tokens less 1 new token is STEPS decode steps.
  let start = performance.now();
  await generate(1);
  const prefillMs = performance.now() - start;
  start = performance.now();
  await generate(1 + STEPS);
  const stepMs = (performance.now() - start - prefillMs) / STEPS;
  // The same under the profiler, kernel by kernel; the difference of the two runs is the decode steps'.
  const [one, many] = [await kernelsOf(() => generate(1)), await kernelsOf(() => generate(1 + STEPS))];
  const perStep = new Map([...many.ms].map(([name, ms]) => [name, (ms - (one.ms.get(name) ?? 0)) / STEPS]));
  const callsPerStep = new Map([...many.calls].map(([name, n]) => [name, (n - (one.calls.get(name) ?? 0)) / STEPS]));
  const kernelsMs = [...perStep.values()].reduce((a, b) => a + b, 0);
  const bandwidth = readBandwidthGBs();
  const weightBytes = model.weightPlan.weightBytes;
  const heldAs = Object.values(model.params.native ?? {}).some((m) => m.dtype !== "F32") ? "bf16" : "float32";
  model.dispose();

  const ms = (x: number) => `${x.toFixed(1)} ms`;
  const share = (x: number) => `${((100 * x) / stepMs).toFixed(0)}%`;
  const rows = [...perStep].sort((a, b) => b[1] - a[1]);
  const weights = (perStep.get("AbliterateNativeLinear") ?? 0) + (perStep.get("lm_head (native product)") ?? 0);
  const top = rows.slice(0, 8);
  const rest = rows.slice(8).reduce((a, [, x]) => a + x, 0);
  console.log(
    `${cpus().length} cores, ${cpus()[0]?.model}; ${backend.device}; ${blas.description}\n` +
      `${shapeName} shapes, batch 1, prompt ${PROMPT} tokens, ${STEPS} greedy steps; ` +
      `weights held as ${heldAs}: ` +
      `${(weightBytes / 1e9).toFixed(2)} GB read per step`,
  );
  console.log(`decode step: ${ms(stepMs)} (${(1000 / stepMs).toFixed(1)} tokens/s), ${(many.count - one.count) / STEPS} kernels`);
  console.log(
    `  weight products (one pass over the weights): ${ms(weights)} (${share(weights)}), ` +
      `${(weightBytes / 1e9 / (weights / 1000)).toFixed(1)} GB/s`,
  );
  for (const [name, x] of top)
    console.log(`  ${name.padEnd(28)} ${ms(x).padStart(9)} ${share(x).padStart(4)}  ${callsPerStep.get(name)} calls`);
  console.log(`  ${"other kernels".padEnd(28)} ${ms(rest).padStart(9)} ${share(rest).padStart(4)}`);
  console.log(
    `  ${"outside kernels (JavaScript)".padEnd(28)} ${ms(stepMs - kernelsMs).padStart(9)} ${share(stepMs - kernelsMs).padStart(4)}`,
  );
  console.log(
    `read bandwidth (sasum over 1 GB): ${bandwidth.toFixed(1)} GB/s; the weights as held streamed once: ` +
      `${ms((weightBytes / 1e9 / bandwidth) * 1000)} per step (${(bandwidth / (weightBytes / 1e9)).toFixed(1)} tokens/s)`,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
