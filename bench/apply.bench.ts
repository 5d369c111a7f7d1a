// `apply` benchmark: orthogonalise and export a multi-GB random bf16 checkpoint (TinyLlama-1.1B's
// shapes, 2.2 GB in two shards), reported as MB/s next to a plain copy of the same files, with peak memory;
// then the same as GGUF files (F16, Q8_0 written here, Q4_K_M by llama.cpp's quantiser), with their sizes.
// Run: npm run bench:apply
import { cp, copyFile, mkdir, mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir, cpus } from "node:os";
import { join } from "node:path";
import { DEMO_MODEL_DIR, exportAbliterated, exportGguf, unitVector } from "../src/index.ts";
import { writeRandomCheckpoint } from "./random-checkpoint.ts";
import { TINYLLAMA_SHAPES } from "./shapes.ts";


let peakRss = 0;
const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 20);
const root = await mkdtemp(join(tmpdir(), "abliterate-apply-bench-"));
try {
  const source = join(root, "source");
  let started = performance.now();
  await writeRandomCheckpoint(source, TINYLLAMA_SHAPES, { dtype: "BF16", maxShardBytes: 1.2e9 });
  const files = (await readdir(source)).filter((f) => f.endsWith(".safetensors"));
  let bytes = 0;
  for (const f of files) bytes += (await stat(join(source, f))).size;
  console.log(`random bf16 checkpoint: ${(bytes / 1e9).toFixed(2)} GB in ${files.length} shards, written in ${((performance.now() - started) / 1000).toFixed(0)} s (${cpus().length} cores, ${cpus()[0]?.model})`);

  const copyDir = join(root, "copy");
  await mkdir(copyDir);
  started = performance.now();
  for (const f of files) await copyFile(join(source, f), join(copyDir, f));
  const copySeconds = (performance.now() - started) / 1000;
  await rm(copyDir, { recursive: true });

  const direction = Float32Array.from({ length: TINYLLAMA_SHAPES.hidden_size }, (_, i) => Math.sin(i + 1));
  peakRss = process.memoryUsage().rss;
  const rssBefore = peakRss;
  started = performance.now();
  const result = await exportAbliterated(source, join(root, "abliterated"), unitVector(direction));
  const applySeconds = (performance.now() - started) / 1000;
  console.log(`plain copy of the shards: ${(bytes / 1e6 / copySeconds).toFixed(0)} MB/s (${copySeconds.toFixed(1)} s)`);
  console.log(`apply (orthogonalise ${result.edited.length} tensors, copy ${result.copied}): ${(bytes / 1e6 / applySeconds).toFixed(0)} MB/s (${applySeconds.toFixed(1)} s)`);
  console.log(`peak RSS during apply: ${(peakRss / 1e6).toFixed(0)} MB (${((peakRss - rssBefore) / 1e6).toFixed(0)} MB above the process before it)`);
  await rm(join(root, "abliterated"), { recursive: true });

  // A GGUF file carries a tokenizer: the demo model's stands in (its ids fit TinyLlama's vocabulary).
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) await cp(join(DEMO_MODEL_DIR, f), join(source, f));
  for (const type of ["f16", "q8_0", "q4_k_m"] as const) {
    const file = join(root, `abliterated-${type}.gguf`);
    peakRss = process.memoryUsage().rss;
    const before = peakRss;
    started = performance.now();
    await exportGguf(source, file, { unit: unitVector(direction), type });
    const seconds = (performance.now() - started) / 1000;
    const size = (await stat(file)).size;
    console.log(`apply --format gguf --type ${type}: ${(size / 1e9).toFixed(2)} GB file in ${seconds.toFixed(1)} s (${(bytes / 1e6 / seconds).toFixed(0)} MB/s of source), peak RSS ${(peakRss / 1e6).toFixed(0)} MB (${((peakRss - before) / 1e6).toFixed(0)} MB above the process before it)`);
    await rm(file);
  }
} finally {
  clearInterval(sampler);
  await rm(root, { recursive: true, force: true });
}
