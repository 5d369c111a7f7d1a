// Choosing the tensor backend. Order: tfjs-node-gpu, tfjs-node (native TensorFlow, optional
// dependencies that need internet to install), then the embedded wasm (SIMD) backend, then plain cpu.
// Force one with `initBackend({ backend })` or the ABLITERATE_BACKEND environment variable.
import * as tf from "@tensorflow/tfjs-core";
// tfjs-core alone registers no gradient functions; the union package registers them all (in a registry
// shared through a global), so that the forward pass is differentiable.
import "@tensorflow/tfjs";
import { enableBlas, type BlasInfo } from "./blas/library.ts";
import { linearKernelOff } from "./blas/linear-kernel.ts";

export const BACKENDS = ["node-gpu", "node", "wasm", "cpu"] as const;
export type BackendName = (typeof BACKENDS)[number];

export interface BackendInfo {
  /** The project's name for it (`node-gpu`, `node`, `wasm`, `cpu`). */
  name: BackendName;
  /** tfjs's registered backend name (`tensorflow`, `wasm`, `cpu`). */
  tfjsBackend: string;
  /** Where the arithmetic runs, in words. */
  device: string;
  tfjsVersion: string;
  /** The native BLAS library that runs matMul on the wasm backend, when one loaded. */
  blas?: BlasInfo;
  /** Why faster backends (or the native BLAS path) were not used: information, not errors. */
  skipped: string[];
}

let active: BackendInfo | undefined;

/**
 * TensorFlow logs its start-up (oneDNN, CPU features) to stderr at INFO level; keep it to warnings and errors
 * unless the user set TF_CPP_MIN_LOG_LEVEL. Read by libtensorflow when it loads, so set before the import.
 */
function quietTensorflow(): void {
  process.env.TF_CPP_MIN_LOG_LEVEL ??= "1";
}

async function tryLoad(name: BackendName, forced: boolean): Promise<{ device: string } | string> {
  try {
    switch (name) {
      case "node-gpu": {
        quietTensorflow();
        // @ts-ignore: optional dependency, absent where it could not be installed
        await import("@tensorflow/tfjs-node-gpu");
        if (!(await tf.setBackend("tensorflow"))) return "tensorflow backend did not initialise";
        const binding = (tf.backend() as unknown as { binding: { TF_Version: string; isUsingGpuDevice(): boolean } }).binding;
        if (binding.isUsingGpuDevice()) return { device: `GPU via libtensorflow ${binding.TF_Version} (CUDA)` };
        // The same binding without a GPU (a CPU build, or CUDA's libraries not found) is the node backend under
        // another name: chosen only by hand, never in place of a real GPU.
        const why = "it loads, but TensorFlow found no GPU (a CPU build of libtensorflow, or CUDA's libraries not found)";
        return forced ? { device: `CPU via libtensorflow ${binding.TF_Version} (tfjs-node-gpu: ${why})` } : why;
      }
      case "node": {
        quietTensorflow();
        // @ts-ignore: optional dependency, absent where it could not be installed
        await import("@tensorflow/tfjs-node");
        if (!(await tf.setBackend("tensorflow"))) return "tensorflow backend did not initialise";
        const version = (tf.backend() as unknown as { binding: { TF_Version: string } }).binding.TF_Version;
        return { device: `CPU via libtensorflow ${version} (multi-threaded)` };
      }
      case "wasm": {
        await import("@tensorflow/tfjs-backend-wasm");
        if (!(await tf.setBackend("wasm"))) return "wasm backend did not initialise";
        return { device: "CPU via WebAssembly SIMD (one thread in Node, 4 GB heap)" };
      }
      case "cpu":
        await import("@tensorflow/tfjs-backend-cpu");
        if (!(await tf.setBackend("cpu"))) return "cpu backend did not initialise";
        return { device: "CPU via plain JavaScript (slow)" };
    }
  } catch (error) {
    // An optional package that is not installed is the usual case, not a failure: say so plainly.
    if ((error as NodeJS.ErrnoException).code === "ERR_MODULE_NOT_FOUND" && (name === "node" || name === "node-gpu")) {
      return (
        `not installed (${name === "node" ? "@tensorflow/tfjs-node" : "@tensorflow/tfjs-node-gpu"} is an optional ` +
        `dependency; its install downloads libtensorflow)`
      );
    }
    return (error as Error).message.split("\n")[0];
  }
}

/**
 * Select and initialise the tensor backend once. Without `backend`, ABLITERATE_BACKEND is read,
 * then the first backend in BACKENDS order that loads is used.
 */
export async function initBackend(options: { backend?: BackendName } = {}): Promise<BackendInfo> {
  const forced = options.backend ?? (process.env.ABLITERATE_BACKEND as BackendName | undefined) ?? undefined;
  if (forced !== undefined && !(BACKENDS as readonly string[]).includes(forced)) {
    throw new Error(
      `unknown backend "${forced}" (from ${options.backend ? "the backend option" : "ABLITERATE_BACKEND"}); choose one of ` +
        `${BACKENDS.join(", ")}`,
    );
  }
  if (active && (forced === undefined || forced === active.name)) return active;
  const candidates = forced ? [forced] : [...BACKENDS];
  const skipped: string[] = [];
  for (const name of candidates) {
    const result = await tryLoad(name, forced !== undefined);
    if (typeof result === "string") {
      skipped.push(`${name}: ${result}`);
      continue;
    }
    await tf.ready();
    let device = result.device;
    let blas: BlasInfo | undefined;
    if (name === "wasm") {
      const native = enableBlas();
      blas = native.info;
      if (blas) {
        device = `CPU via WebAssembly SIMD, matMul by native BLAS (${blas.description}, ${blas.threads} threads)`;
        if (blas.kernel) device += `, decoding products by the compiled kernel (${blas.kernel})`;
        else if (native.kernelSkipped) skipped.push(native.kernelSkipped);
      } else if (native.skipped) skipped.push(native.skipped);
      const setting = process.env.ABLITERATE_BLAS;
      if (!blas && process.env.ABLITERATE_REQUIRE_BLAS === "1" && setting !== "off")
        throw new Error(`ABLITERATE_REQUIRE_BLAS=1, but the native BLAS path is not taken: ${native.skipped ?? "no library"}`);
      // The tests' switch also makes sure the decoding kernel is taken, unless it is turned off by name.
      if (blas && !blas.kernel && process.env.ABLITERATE_REQUIRE_BLAS === "1" && !linearKernelOff())
        throw new Error(`ABLITERATE_REQUIRE_BLAS=1, but the decoding kernel is not taken: ${native.kernelSkipped}`);
      // A library named by hand that cannot be used is said, not passed over in silence.
      if (!blas && setting && setting !== "off") console.error(`abliterate: ABLITERATE_BLAS=${setting} is not used: ${native.skipped}`);
    }
    active = { name, tfjsBackend: tf.getBackend(), device, tfjsVersion: tf.version_core, blas, skipped };
    return active;
  }
  throw new Error(`no tensor backend could be initialised:\n  ${skipped.join("\n  ")}`);
}

/** The active backend; initialises the default one on first use. */
export async function backendInfo(): Promise<BackendInfo> {
  return active ?? initBackend();
}

/** Bytes of the wasm backend's heap now (it only grows, so this is its peak), or undefined on other backends. */
export function wasmHeapBytes(): number | undefined {
  if (active?.name !== "wasm") return undefined;
  return (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.buffer.byteLength;
}
