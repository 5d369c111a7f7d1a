// Engine benchmark: a random model with SmolLM2-135M's shapes. Prints prefill and decode speed,
// peak memory, and the achieved GFLOP/s next to the raw matMul GFLOP/s of the same backend.
// Run: npm run bench   (ABLITERATE_BACKEND=cpu|wasm|node|node-gpu to choose the backend)
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir, cpus } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend, loadModel } from "../src/index.ts";
import { writeRandomCheckpoint } from "./random-checkpoint.ts";
import { SMOLLM2_135M_SHAPES } from "./shapes.ts";

const PREFILL_BATCH = 4;
const PREFILL_LEN = 128;
const DECODE_TOKENS = 32;

let peakRss = 0;
const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 20);
const mb = (b: number) => `${(b / 1024 ** 2).toFixed(0)} MB`;

async function time(fn: () => Promise<void> | void, repeats: number): Promise<number> {
  await fn(); // warm-up
  const start = performance.now();
  for (let i = 0; i < repeats; i++) await fn();
  return (performance.now() - start) / 1000 / repeats;
}

async function rawMatMulGflops(m: number, k: number, n: number): Promise<number> {
  const a = tf.randomNormal([m, k]);
  const b = tf.randomNormal([k, n]);
  const seconds = await time(async () => {
    const c = tf.matMul(a, b);
    await c.data();
    c.dispose();
  }, 5);
  a.dispose();
  b.dispose();
  return (2 * m * k * n) / seconds / 1e9;
}

const backend = await initBackend();
console.log(`backend: ${backend.name} (${backend.device}); tfjs ${backend.tfjsVersion}; ${cpus().length} cores, ${cpus()[0]?.model}`);
const dir = await mkdtemp(join(tmpdir(), "abliterate-bench-"));
try {
  const config = await writeRandomCheckpoint(dir, SMOLLM2_135M_SHAPES, { dtype: "BF16" });
  let start = performance.now();
  const model = await loadModel(dir);
  console.log(`load: ${((performance.now() - start) / 1000).toFixed(1)} s for SmolLM2-135M shapes (bf16 on disk)`);

  const d = config.hidden_size;
  const dMlp = config.intermediate_size;
  const kvDim = (config.num_key_value_heads! * d) / config.num_attention_heads;
  const tokens = PREFILL_BATCH * PREFILL_LEN;
  const raw = await rawMatMulGflops(tokens, d, dMlp);
  console.log(`raw matMul [${tokens}x${d}] @ [${d}x${dMlp}]: ${raw.toFixed(1)} GFLOP/s`);

  // FLOPs of one prefill: projections and MLP per token, attention scores and mixing, lm_head at the last position.
  const perTokenLayer = 2 * (d * d * 2 + d * kvDim * 2 + 3 * d * dMlp);
  const attention = 2 * 2 * config.num_attention_heads * (d / config.num_attention_heads) * PREFILL_LEN * PREFILL_LEN * PREFILL_BATCH;
  const prefillFlops = config.num_hidden_layers * (perTokenLayer * tokens + attention) + 2 * d * config.vocab_size * PREFILL_BATCH;

  const rng = (i: number) => (i * 7919) % config.vocab_size;
  const batch = Array.from({ length: PREFILL_BATCH }, (_, b) => Array.from({ length: PREFILL_LEN }, (_, t) => rng(b * PREFILL_LEN + t + 3)));
  const prefillSeconds = await time(async () => {
    const logits = model.forward(batch, { logits: "last" });
    await logits.data();
    logits.dispose();
  }, 3);
  const prefillGflops = prefillFlops / prefillSeconds / 1e9;
  console.log(`prefill: ${PREFILL_BATCH}x${PREFILL_LEN} tokens in ${prefillSeconds.toFixed(2)} s = ${(tokens / prefillSeconds).toFixed(0)} tokens/s, ${prefillGflops.toFixed(1)} GFLOP/s (${((100 * prefillGflops) / raw).toFixed(0)}% of raw matMul)`);

  for (const rows of [1, PREFILL_BATCH]) {
    const prompt = batch.slice(0, rows).map((s) => s.slice(0, 16));
    start = performance.now();
    await model.generate(prompt, { maxNewTokens: 1, stopTokens: [] });
    const prefillOnly = performance.now() - start;
    start = performance.now();
    await model.generate(prompt, { maxNewTokens: DECODE_TOKENS + 1, stopTokens: [] });
    const decodeSeconds = (performance.now() - start - prefillOnly) / 1000;
    console.log(`decode: batch ${rows}, ${DECODE_TOKENS} steps: ${((rows * DECODE_TOKENS) / decodeSeconds).toFixed(1)} tokens/s (${((1000 * decodeSeconds) / DECODE_TOKENS).toFixed(0)} ms per step)`);
  }
  console.log(`peak memory: RSS ${mb(peakRss)}; tensors held now ${mb(tf.memory().numBytes)}`);
  model.dispose();
} finally {
  clearInterval(sampler);
  await rm(dir, { recursive: true, force: true });
}
