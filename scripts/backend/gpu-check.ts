// The GPU check, for a machine with an NVIDIA GPU: installs @tensorflow/tfjs-node-gpu, runs the parity suite
// (every architecture against the float64 references) and the engine benchmark on the `tensorflow` backend with
// the GPU, and prints the device TensorFlow placed its work on.
//
// Where @tensorflow/tfjs-node-gpu comes from, first that works: already installed and loading; built from a
// GPU-capable TensorFlow wheel (the `tensorflow` project) in pip's local mirror or named by --wheel; the
// package's ordinary install (it downloads libtensorflow); else built from the CPU wheel, the same binding
// without CUDA, so that everything up to the GPU is still checked. Without a GPU it stops there and says so.
// Run: npm run backend:gpu-check [-- --wheel PATH]
//
// Exit status: 0 when the GPU was used and every check passed; 2 when every check passed up to the point
// that needs a GPU and there is none; 1 on a failure.
import { execFileSync, spawnSync } from "node:child_process";
import { Command } from "commander";
import { PACKAGE_ROOT } from "../../src/paths.ts";
import { findWheel, installFromWheel, lockedVersion, NPM_NAME, packageDir, probe, Skipped } from "../../tools/tfjs-node.ts";

const say = (line: string) => console.log(`backend:gpu-check: ${line}`);

/** The GPUs the driver lists (`nvidia-smi -L`), or why none. */
function driverGpus(): { gpus: string[]; note?: string } {
  const result = spawnSync("nvidia-smi", ["-L"], { encoding: "utf8" });
  if (result.error) return { gpus: [], note: "nvidia-smi is not on this machine (no NVIDIA driver)" };
  if (result.status !== 0) return { gpus: [], note: `nvidia-smi failed: ${(result.stderr || result.stdout).trim().split("\n")[0]}` };
  return { gpus: result.stdout.trim().split("\n").filter(Boolean) };
}

/**
 * The devices TensorFlow creates for a small matMul on the `tensorflow` backend of tfjs-node-gpu, from its
 * log (TensorFlow names each device it creates: "Created device /job:localhost/.../device:GPU:0 with ... ->
 * device: 0, name: ..."), and whether the binding reports running on a GPU.
 */
export function tensorflowDevices(): { gpuLines: string[]; usingGpu: boolean } {
  const script =
    `const tf = require(${JSON.stringify(NPM_NAME["node-gpu"])});` +
    `tf.matMul(tf.ones([64, 64]), tf.ones([64, 64])).dataSync();` +
    `console.log(JSON.stringify({ gpu: tf.backend().binding.isUsingGpuDevice() }));`;
  // TensorFlow's own log level (0: everything), for this probe only: it is where the device is named.
  const result = spawnSync(process.execPath, ["-e", script], {
    cwd: PACKAGE_ROOT,
    encoding: "utf8",
    env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: "0" },
  });
  if (result.status !== 0) throw new Error(`the device probe failed: ${result.stderr.trim().split("\n").slice(-3).join(" / ")}`);
  const gpuLines = result.stderr
    .split("\n")
    .filter((l) => /Created device .*GPU|device: \d+, name:/.test(l))
    .map((l) => l.replace(/^.*\] /, "").trim());
  const usingGpu = JSON.parse(result.stdout.trim().split("\n").at(-1)!).gpu === true;
  return { gpuLines, usingGpu };
}

/** Installs tfjs-node-gpu by the first route that works; says which. */
function install(wheel: string | undefined): string {
  const loaded = packageDir("node-gpu") ? probe("node-gpu") : undefined;
  if (loaded?.ok) {
    say(`${NPM_NAME["node-gpu"]} already loads (TensorFlow ${loaded.tfVersion})`);
    return "already installed";
  }
  try {
    const found = findWheel(wheel, ["tensorflow"]);
    say(`building against the GPU-capable wheel ${found.wheel}`);
    installFromWheel({ pkg: "node-gpu", wheel: found.wheel, projects: ["tensorflow"], force: true });
    return `built from ${found.wheel} (CUDA libraries must be on the loader's path for it to use the GPU)`;
  } catch (error) {
    if (!(error instanceof Skipped)) throw error;
    say(`no GPU TensorFlow wheel: ${error.message}`);
  }
  say(`trying the package's ordinary install (it downloads libtensorflow for CUDA)`);
  // Its install script (npm rebuild runs it) downloads libtensorflow; offline it fails at once.
  const ordinary = packageDir("node-gpu")
    ? spawnSync("npm", ["rebuild", NPM_NAME["node-gpu"]], { cwd: PACKAGE_ROOT, encoding: "utf8" })
    : spawnSync("npm", ["install", "--no-save", "--no-audit", "--no-fund", `${NPM_NAME["node-gpu"]}@${lockedVersion("node-gpu")}`], {
        cwd: PACKAGE_ROOT,
        encoding: "utf8",
      });
  const after = packageDir("node-gpu") ? probe("node-gpu") : undefined;
  if (ordinary.status === 0 && after?.ok) return "the ordinary install (downloaded libtensorflow)";
  say(`the ordinary install did not give a working package (${after && !after.ok ? after.reason : "its download failed"})`);
  say(`building the same binding from the CPU wheel instead: every check up to the GPU still runs`);
  const shareDepsFrom = packageDir("node") ? `${packageDir("node")}/deps` : undefined;
  installFromWheel({ pkg: "node-gpu", wheel, projects: ["tensorflow-cpu"], force: true, shareDepsFrom });
  return "built from the CPU wheel (no CUDA: this build cannot use a GPU)";
}

const program = new Command("backend:gpu-check")
  .description("install @tensorflow/tfjs-node-gpu and run the parity suite and the engine benchmark on the GPU")
  .option("--wheel <path>", "a TensorFlow wheel to build the binding from (default: pip's local mirror)")
  .option("--skip-bench", "run the parity suite only")
  .parse();
const options = program.opts<{ wheel?: string; skipBench?: boolean }>();

try {
  const driver = driverGpus();
  say(`driver: ${driver.gpus.length ? driver.gpus.join("; ") : driver.note}`);
  const route = install(options.wheel);
  say(`${NPM_NAME["node-gpu"]}: ${route}`);
  const devices = tensorflowDevices();
  say(`TensorFlow's devices: ${devices.gpuLines.length ? devices.gpuLines.join("; ") : "CPU only (it created no GPU device)"}`);
  say(`the binding reports running on a GPU: ${devices.usingGpu}`);
  const env = { ...process.env, ABLITERATE_BACKEND: "node-gpu" };
  say(`parity suite on --backend node-gpu (test/model.test.ts, test/pipeline.test.ts, test/stages.test.ts)`);
  execFileSync(
    process.execPath,
    ["--import", "tsx", "--test", "--test-reporter=dot", "test/model.test.ts", "test/pipeline.test.ts", "test/stages.test.ts"],
    { cwd: PACKAGE_ROOT, env, stdio: "inherit" },
  );
  say(`parity suite passed on ${devices.usingGpu ? "the GPU" : "the CPU build of the binding"}`);
  if (!devices.usingGpu) {
    say(`stopped here: the engine benchmark on the GPU needs a GPU, and ${driver.note ?? "TensorFlow created no GPU device"}`);
    process.exit(2);
  }
  if (!options.skipBench) {
    execFileSync(process.execPath, ["--import", "tsx", "bench/engine.bench.ts"], {
      cwd: PACKAGE_ROOT,
      env: { ...env, ENGINE_BENCH_PATHS: "tensorflow-gpu,native BLAS" },
      stdio: "inherit",
    });
  }
  say(`passed on the GPU: ${devices.gpuLines.join("; ")}`);
} catch (error) {
  console.error(`backend:gpu-check: failed: ${(error as Error).message}`);
  process.exit(1);
}
