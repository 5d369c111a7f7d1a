// `apply` benchmark: orthogonalise and export a multi-GB random bf16 checkpoint (TinyLlama-1.1B's
// shapes, 2.2 GB in two shards), reported as MB/s next to plain copies of the same files (fs.copyFile and
// copy_file_range, each run three times in turn with apply), with peak memory;
// then the same as GGUF files (F16, Q8_0 written here, Q4_K_M by llama.cpp's quantiser), with their sizes.
// Run: npm run bench:apply (APPLY_BENCH_GGUF=0 leaves the GGUF files out, APPLY_BENCH_SAFETENSORS=0 the copies and apply)
import { cp, copyFile, mkdir, mkdtemp, open, readdir, rm, stat } from "node:fs/promises";
import { execFileSync } from "node:child_process";
import { tmpdir, cpus } from "node:os";
import { join } from "node:path";
import { DEMO_MODEL_DIR, exportAbliterated, exportGguf, unitVector } from "../src/index.ts";
import { copyRange, kernelCopy } from "../src/copy-range.ts";
import { writeRandomCheckpoint } from "../tools/random-checkpoint.ts";
import { TINYLLAMA_SHAPES } from "../tools/shapes.ts";

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
  console.log(
    `random bf16 checkpoint: ${(bytes / 1e9).toFixed(2)} GB in ${files.length} shards, written in ` +
      `${((performance.now() - started) / 1000).toFixed(0)} s (${cpus().length} cores, ${cpus()[0]?.model})`,
  );

  const direction = Float32Array.from({ length: TINYLLAMA_SHAPES.hidden_size }, (_, i) => Math.sin(i + 1));
  if (process.env.APPLY_BENCH_SAFETENSORS !== "0") await safetensorsRuns();
  // Two plain copies (Node's fs.copyFile, and copy_file_range as the export copies unedited tensors where the
  // system allows) and apply take turns, three times each.
  async function safetensorsRuns(): Promise<void> {
    // Two plain copies (Node's fs.copyFile, and copy_file_range as the export copies unedited tensors where the
    // system allows) and apply take turns, three times each, every run starting with the disk's writes
    // flushed (`sync`), so that none pays for another's writing back; the ratios compare the best runs.
    const seconds: Record<"copyFile" | "copyRange" | "apply", number[]> = { copyFile: [], copyRange: [], apply: [] };
    const timed = async (what: keyof typeof seconds, work: () => Promise<unknown>) => {
      execFileSync("sync");
      const started = performance.now();
      await work();
      seconds[what].push((performance.now() - started) / 1000);
    };
    const copyDir = join(root, "copy");
    let result: Awaited<ReturnType<typeof exportAbliterated>> | undefined;
    let peakAbove = 0;
    for (let run = 0; run < 3; run++) {
      await mkdir(copyDir);
      await timed("copyFile", async () => {
        for (const f of files) await copyFile(join(source, f), join(copyDir, f));
      });
      await rm(copyDir, { recursive: true });
      if (kernelCopy() === "copy_file_range") {
        await mkdir(copyDir);
        await timed("copyRange", async () => {
          for (const f of files) {
            const [from, to] = [await open(join(source, f), "r"), await open(join(copyDir, f), "w")];
            await copyRange({ handle: from, start: 0, length: (await from.stat()).size, path: f }, to, 0);
            await Promise.all([from.close(), to.close()]);
          }
        });
        await rm(copyDir, { recursive: true });
      }
      peakRss = process.memoryUsage().rss;
      const rssBefore = peakRss;
      await timed("apply", async () => (result = await exportAbliterated(source, join(root, "abliterated"), unitVector(direction))));
      peakAbove = Math.max(peakAbove, peakRss - rssBefore);
      await rm(join(root, "abliterated"), { recursive: true });
    }
    const rate = (s: number) => `${(bytes / 1e6 / s).toFixed(0)} MB/s (${s.toFixed(1)} s)`;
    const best = (what: keyof typeof seconds) => Math.min(...seconds[what]);
    console.log(`plain copy of the shards, fs.copyFile: ${seconds.copyFile.map(rate).join(", ")}`);
    if (seconds.copyRange.length > 0) console.log(`plain copy of the shards, copy_file_range: ${seconds.copyRange.map(rate).join(", ")}`);
    console.log(
      `apply (orthogonalise ${result!.edited.length} tensors, copy ${result!.copied}; unedited bytes by ` +
        `${kernelCopy() === "copy_file_range" ? "copy_file_range" : `read and write: copy_file_range ${kernelCopy()}`}): ` +
        `${seconds.apply.map(rate).join(", ")}`,
    );
    console.log(
      `apply's best run at ${((100 * best("copyFile")) / best("apply")).toFixed(0)}% of fs.copyFile's best ` +
        `throughput${
          seconds.copyRange.length > 0 ? ` and ${((100 * best("copyRange")) / best("apply")).toFixed(0)}% of ` + `copy_file_range's` : ""
        }`,
    );
    console.log(`peak RSS during apply: ${(peakRss / 1e6).toFixed(0)} MB (${(peakAbove / 1e6).toFixed(0)} MB above the process before it)`);
    // The edit variants (#25): kernels go through the same kernels as the paper's edit; the norm-preserving
    // edit takes its own path (three passes over each weight). Each once, after `sync`, against the best copy.
    const n = TINYLLAMA_SHAPES.num_hidden_layers;
    const means = Array.from({ length: n }, (_, l) => Float64Array.from(direction, (x, i) => Math.cos(x + l + i)));
    const variants = {
      "strength kernels": {
        kernels: { attention: { maxWeight: 1.2, maxWeightPosition: n / 2, minWeight: 0.4, minWeightDistance: n / 3 } },
      },
      biprojected: { biprojectAgainst: means },
      "norm-preserving": { normPreserving: true },
      "biprojected, norm-preserving, kernels": {
        biprojectAgainst: means,
        normPreserving: true,
        kernels: { mlp: { maxWeight: 1, maxWeightPosition: n / 2, minWeight: 0.5, minWeightDistance: n / 2 } },
      },
    };
    for (const [name, options] of Object.entries(variants)) {
      execFileSync("sync");
      peakRss = process.memoryUsage().rss;
      const rssBefore = peakRss;
      const started = performance.now();
      const done = await exportAbliterated(source, join(root, "abliterated"), unitVector(direction), options);
      const s = (performance.now() - started) / 1000;
      console.log(
        `apply, ${name} (${done.edited.length} tensors edited): ${rate(s)}, ${((100 * best("copyFile")) / s).toFixed(0)}% of ` +
          `fs.copyFile's best; peak RSS ${((peakRss - rssBefore) / 1e6).toFixed(0)} MB above the process before it`,
      );
      await rm(join(root, "abliterated"), { recursive: true });
    }
  }

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
    console.log(
      `apply --format gguf --type ${type}: ${(size / 1e9).toFixed(2)} GB file in ${seconds.toFixed(1)} s ` +
        `(${(bytes / 1e6 / seconds).toFixed(0)} MB/s of source), peak RSS ${(peakRss / 1e6).toFixed(0)} MB ` +
        `(${((peakRss - before) / 1e6).toFixed(0)} MB above the process before it)`,
    );
    await rm(file);
  }
} finally {
  clearInterval(sampler);
  await rm(root, { recursive: true, force: true });
}
