// Engine benchmark: random models with SmolLM2-135M's and Qwen2.5-0.5B's shapes, on the stock wasm kernels,
// on the native BLAS path and on TensorFlow's own kernels (tfjs-node, where it loads), side by side. For
// each: load time; prefill (tokens/s, GFLOP/s, and the share of the raw matMul rate of the same kernels on
// the same shapes, measured in the same run); decode (tokens/s, and the share of the read-bandwidth limit:
// the machine's read rate, measured once in the same run, over the bytes of weights a step reads); peak RSS. Each path runs in a child
// process (the kernels are chosen once per process).
// Run: npm run bench:engine   (ENGINE_BENCH_SHAPES=smollm2-135m,qwen2.5-0.5b;
// ENGINE_BENCH_PATHS="stock wasm,native BLAS,tensorflow", and tensorflow-gpu for tfjs-node-gpu)
import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend, loadModel, type BackendName } from "../src/index.ts";
import { readBandwidthGBs } from "../tools/bandwidth.ts";
import { writeRandomCheckpoint } from "../tools/random-checkpoint.ts";
import { QWEN25_05B_SHAPES, SMOLLM2_135M_SHAPES } from "../tools/shapes.ts";

const SHAPES: Record<
  string,
  Record<string, unknown> & {
    hidden_size: number;
    intermediate_size: number;
    num_hidden_layers: number;
    num_attention_heads: number;
    num_key_value_heads: number;
    vocab_size: number;
  }
> = {
  "smollm2-135m": SMOLLM2_135M_SHAPES,
  "qwen2.5-0.5b": QWEN25_05B_SHAPES,
};
/** Each path's backend: the wasm backend (with or without the BLAS library) or TensorFlow's. */
const PATH_BACKENDS: Record<string, BackendName> = {
  "stock wasm": "wasm",
  "native BLAS": "wasm",
  tensorflow: "node",
  "tensorflow-gpu": "node-gpu",
};
const PREFILL_BATCH = 4;
const PREFILL_LEN = 128;
const DECODE_TOKENS = 16;

interface Result {
  shape: string;
  path: string;
  device: string;
  layout: string;
  loadSeconds: number;
  rawGflops: number;
  prefillTokensPerSecond: number;
  prefillGflops: number;
  decode: { batch: number; tokensPerSecond: number }[];
  /** Bytes of weights one decode step reads. */
  bytesPerStep: number;
  peakRssMB: number;
}

async function time(fn: () => Promise<void> | void, repeats: number): Promise<number> {
  await fn(); // warm-up
  const start = performance.now();
  for (let i = 0; i < repeats; i++) await fn();
  return (performance.now() - start) / 1000 / repeats;
}

/**
 * The same kernels on the model's MLP projection shapes, in the form the model's layout uses: x @ W for
 * transposed weights, (W @ x^T)^T for weights held as stored, x @ W^T (sgemm with B transposed) for weights
 * held outside the heap. GFLOP/s for a prefill's rows.
 */
async function rawMatMulGflops(rows: number, d: number, dMlp: number, layout: string): Promise<number> {
  const shapes: [number, number][] = [
    [d, dMlp],
    [dMlp, d],
  ];
  let flops = 0;
  let seconds = 0;
  for (const [k, n] of shapes) {
    const a = tf.randomNormal([rows, k]);
    const b = layout === "transposed" ? tf.randomNormal([k, n]) : tf.randomNormal([n, k]);
    seconds += await time(async () => {
      const c =
        layout === "stored"
          ? tf.tidy(() => tf.transpose(tf.matMul(b as tf.Tensor2D, tf.transpose(a))))
          : layout === "native"
            ? tf.matMul(a, b, false, true)
            : tf.matMul(a, b);
      await c.data();
      c.dispose();
    }, 3);
    flops += 2 * rows * k * n;
    tf.dispose([a, b]);
  }
  return flops / seconds / 1e9;
}

async function child(shapeName: string, path: string): Promise<void> {
  let peakRss = 0;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 20);
  const backend = await initBackend({ backend: PATH_BACKENDS[path] });
  const shape = SHAPES[shapeName];
  const dir = await mkdtemp(join(tmpdir(), "abliterate-bench-"));
  try {
    const config = await writeRandomCheckpoint(dir, shape, { dtype: "BF16" });
    let start = performance.now();
    const model = await loadModel(dir);
    const loadSeconds = (performance.now() - start) / 1000;
    const d = config.hidden_size;
    const dMlp = config.intermediate_size;
    const kvDim = (config.num_key_value_heads! * d) / config.num_attention_heads;
    const tokens = PREFILL_BATCH * PREFILL_LEN;
    const raw = await rawMatMulGflops(tokens, d, dMlp, model.weightPlan.layout);
    // FLOPs of one prefill: projections and MLP per token, attention scores and mixing, lm_head at the last position.
    const perTokenLayer = 2 * (d * d * 2 + d * kvDim * 2 + 3 * d * dMlp);
    const attention = 2 * 2 * config.num_attention_heads * (d / config.num_attention_heads) * PREFILL_LEN * PREFILL_LEN * PREFILL_BATCH;
    const prefillFlops = config.num_hidden_layers * (perTokenLayer * tokens + attention) + 2 * d * config.vocab_size * PREFILL_BATCH;
    const rng = (i: number) => (i * 7919) % config.vocab_size;
    const batch = Array.from({ length: PREFILL_BATCH }, (_, b) =>
      Array.from({ length: PREFILL_LEN }, (_, t) => rng(b * PREFILL_LEN + t + 3)),
    );
    const prefillSeconds = await time(async () => {
      const logits = model.forward(batch, { logits: "last" });
      await logits.data();
      logits.dispose();
    }, 1);
    // Decode reads every weight once per step (XNNPACK reads its packed copies instead of the originals).
    const bytesPerStep = model.weightPlan.weightBytes;
    const decode = [];
    for (const rows of [1, PREFILL_BATCH]) {
      const prompt = batch.slice(0, rows).map((s) => s.slice(0, 16));
      start = performance.now();
      await model.generate(prompt, { maxNewTokens: 1, stopTokens: [] });
      const prefillOnly = performance.now() - start;
      start = performance.now();
      await model.generate(prompt, { maxNewTokens: DECODE_TOKENS + 1, stopTokens: [] });
      const decodeSeconds = (performance.now() - start - prefillOnly) / 1000;
      decode.push({
        batch: rows,
        tokensPerSecond: (rows * DECODE_TOKENS) / decodeSeconds,
      });
    }
    model.dispose();
    const result: Result = {
      shape: shapeName,
      path,
      device: backend.device,
      layout: model.weightPlan.layout,
      loadSeconds,
      rawGflops: raw,
      prefillTokensPerSecond: tokens / prefillSeconds,
      prefillGflops: prefillFlops / prefillSeconds / 1e9,
      decode,
      bytesPerStep,
      peakRssMB: peakRss / 1e6,
    };
    console.log(JSON.stringify(result));
  } finally {
    clearInterval(sampler);
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.env.ENGINE_BENCH_CHILD) {
  const [shape, path] = process.env.ENGINE_BENCH_CHILD.split(":");
  await child(shape, path);
} else {
  const shapes = (process.env.ENGINE_BENCH_SHAPES ?? "smollm2-135m,qwen2.5-0.5b").split(",");
  // Measured here, once, before any model: in a child its 1 GiB buffer would count in the model's peak RSS.
  const readGBs = readBandwidthGBs();
  console.log(
    `${cpus().length} cores, ${cpus()[0]?.model}; prefill ${PREFILL_BATCH}x${PREFILL_LEN} tokens, decode ${DECODE_TOKENS} steps; ` +
      `bf16 checkpoints held as float32; read bandwidth ${readGBs.toFixed(1)} GB/s (tools/bandwidth.ts)`,
  );
  for (const shape of shapes) {
    for (const path of (process.env.ENGINE_BENCH_PATHS ?? "stock wasm,native BLAS,tensorflow").split(",")) {
      if (!PATH_BACKENDS[path])
        throw new Error(`ENGINE_BENCH_PATHS: unknown path "${path}" (known: ${Object.keys(PATH_BACKENDS).join(", ")})`);
      const env = {
        ...process.env,
        ENGINE_BENCH_CHILD: `${shape}:${path}`,
        ABLITERATE_BLAS: path === "stock wasm" ? "off" : (process.env.ABLITERATE_BLAS ?? ""),
      };
      if (path === "native BLAS" && env.ABLITERATE_BLAS === "") delete (env as Record<string, string | undefined>).ABLITERATE_BLAS;
      const run = spawnSync(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url)], {
        env,
        encoding: "utf8",
        maxBuffer: 1 << 24,
      });
      if (run.status !== 0) {
        // A backend that does not load here (tfjs-node not built) is said and passed over; anything else fails.
        const reason = /no tensor backend could be initialised:\s*(.*)/.exec(run.stderr)?.[1];
        if (PATH_BACKENDS[path] !== "wasm" && reason) {
          console.log(`${shape}, ${path}: not available here (${reason}; npm run backend:tfjs-node builds it)`);
          continue;
        }
        throw new Error(`${shape}, ${path}: exit ${run.status}\n${run.stderr.slice(-2000)}`);
      }
      const r = JSON.parse(run.stdout.trim().split("\n").pop()!) as Result;
      if (path === "native BLAS" && !/native BLAS/.test(r.device)) {
        console.log(`${shape}, native BLAS: not available here (${r.device})`);
        continue;
      }
      // A step reads every weight once: the read rate over those bytes, per sequence of the batch.
      const limit = (batch: number) => (batch * readGBs * 1e9) / r.bytesPerStep;
      const decode = r.decode
        .map(
          (x) =>
            `batch ${x.batch}: ${x.tokensPerSecond.toFixed(1)} tokens/s ` +
            `(${((100 * x.tokensPerSecond) / limit(x.batch)).toFixed(0)}% of the ${limit(x.batch).toFixed(0)} tokens/s ` +
            `read-bandwidth limit)`,
        )
        .join("; ");
      console.log(
        `${shape}, ${path} (${r.layout} weights): load ${r.loadSeconds.toFixed(1)} s; raw matMul ${r.rawGflops.toFixed(1)} GFLOP/s; ` +
          `prefill ${r.prefillTokensPerSecond.toFixed(0)} tokens/s, ${r.prefillGflops.toFixed(1)} GFLOP/s = ` +
          `${((100 * r.prefillGflops) / r.rawGflops).toFixed(0)}% of raw; decode ${decode}; peak ` +
          `RSS ${r.peakRssMB.toFixed(0)} MB; ${r.device}`,
      );
    }
  }
}
