// Compiles src/native/linear.c (the kernels decoding runs: products of a few rows with a weight held as stored,
// and a decoding step's attention) into
// build/native/, where src/blas/linear-kernel.ts loads it. npm install runs this; run it again with
// npm run build:native. It never fails the install: without a C compiler (or where the build fails) it says
// why, and the package multiplies through BLAS instead, more slowly when decoding.
import { execFileSync } from "node:child_process";
import { mkdir, rename, rm } from "node:fs/promises";
import { dirname } from "node:path";
import { LINEAR_LIBRARY, LINEAR_SOURCE } from "../../src/blas/linear-kernel.ts";

const compiler = process.env.CC || "cc";
const temporary = `${LINEAR_LIBRARY}.${process.pid}.tmp`;
const attempts = [
  // -z nodelete: the library (and so OpenMP's runtime) is never unloaded; unloaded at exit while OpenMP's threads
  // still wait for work, the process crashed now and then (segmentation fault after its output, under load).
  ["-O3", "-fopenmp", "-shared", "-fPIC", "-Wl,-z,nodelete"],
  // A compiler without OpenMP (Apple's clang): one thread.
  ["-O3", "-Wno-unknown-pragmas", "-shared", "-fPIC"],
];
await mkdir(dirname(LINEAR_LIBRARY), { recursive: true });
const failures: string[] = [];
let built = false;
for (const flags of attempts) {
  try {
    execFileSync(compiler, [...flags, "-o", temporary, LINEAR_SOURCE, "-lm"], { stdio: ["ignore", "pipe", "pipe"] });
    // Renamed into place, so that a library another process has loaded is never rewritten under it.
    await rename(temporary, LINEAR_LIBRARY);
    console.log(`abliterate: built ${LINEAR_LIBRARY} (${compiler} ${flags.join(" ")})`);
    built = true;
    break;
  } catch (error) {
    const e = error as { stderr?: Buffer; message: string };
    failures.push(`${compiler} ${flags.join(" ")}: ${(e.stderr?.toString() || e.message).trim().split("\n").slice(0, 3).join(" / ")}`);
  }
}
await rm(temporary, { force: true });
if (!built) {
  console.warn(
    `abliterate: the decoding kernel (${LINEAR_SOURCE}) was not built, so products of a few rows run through BLAS ` +
      `(slower decoding; nothing else changes). Install a C compiler (Debian: gcc) and run npm run build:native.\n  ` +
      failures.join("\n  "),
  );
}
