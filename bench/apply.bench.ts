// `apply` benchmark: orthogonalise and export a multi-GB random bf16 checkpoint (TinyLlama-1.1B's
// shapes, 2.2 GB in two shards), reported as MB/s next to a plain copy of the same files (each twice, in
// turn), with peak memory;
// then the same as GGUF files (F16, Q8_0 written here, Q4_K_M by llama.cpp's quantiser), with their sizes.
// Run: npm run bench:apply (APPLY_BENCH_GGUF=0 leaves the GGUF files out)
import { cp, copyFile, mkdir, mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { execFileSync } from "node:child_process";
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

  // Copy and apply alternate, twice each, every run starting with the disk's writes flushed (`sync`), so that
  // neither pays for the other's writing back; the ratio compares the best run of each.
  const direction = Float32Array.from({ length: TINYLLAMA_SHAPES.hidden_size }, (_, i) => Math.sin(i + 1));
  const copySeconds: number[] = [];
  const applySeconds: number[] = [];
  let result: Awaited<ReturnType<typeof exportAbliterated>> | undefined;
  let peakAbove = 0;
  for (let run = 0; run < 3; run++) {
    const copyDir = join(root, "copy");
    await mkdir(copyDir);
    execFileSync("sync");
    started = performance.now();
    for (const f of files) await copyFile(join(source, f), join(copyDir, f));
    copySeconds.push((performance.now() - started) / 1000);
    await rm(copyDir, { recursive: true });

    execFileSync("sync");
    peakRss = process.memoryUsage().rss;
    const rssBefore = peakRss;
    started = performance.now();
    result = await exportAbliterated(source, join(root, "abliterated"), unitVector(direction));
    applySeconds.push((performance.now() - started) / 1000);
    peakAbove = Math.max(peakAbove, peakRss - rssBefore);
    await rm(join(root, "abliterated"), { recursive: true });
  }
  const rate = (seconds: number) => `${(bytes / 1e6 / seconds).toFixed(0)} MB/s (${seconds.toFixed(1)} s)`;
  console.log(`plain copy of the shards: ${copySeconds.map(rate).join(", ")}`);
  console.log(`apply (orthogonalise ${result!.edited.length} tensors, copy ${result!.copied}): ${applySeconds.map(rate).join(", ")}`);
  console.log(`apply's best run at ${((100 * Math.min(...copySeconds)) / Math.min(...applySeconds)).toFixed(0)}% of the plain copy's best throughput`);
  console.log(`peak RSS during apply: ${(peakRss / 1e6).toFixed(0)} MB (${(peakAbove / 1e6).toFixed(0)} MB above the process before it)`);

  // A GGUF file carries a tokenizer: the demo model's stands in (its ids fit TinyLlama's vocabulary).
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) await cp(join(DEMO_MODEL_DIR, f), join(source, f));
  for (const type of process.env.APPLY_BENCH_GGUF === "0" ? [] : (["f16", "q8_0", "q4_k_m"] as const)) {
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
