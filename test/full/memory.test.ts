// Memory on the stock wasm backend (no native BLAS): a matMul XNNPACK cannot compute fails loudly, and a
// real-size model (Qwen2.5-0.5B's shapes) runs the whole pipeline within the memory estimated beforehand.
process.env.ABLITERATE_BLAS = "off"; // this file tests the default install's path, without system libraries
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cp, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, it, before, after } from "node:test";
import { backendInfo, runPipeline } from "../../src/index.ts";
import { PACKAGE_ROOT } from "../../src/paths.ts";
import { writeRandomCheckpoint } from "../../tools/random-checkpoint.ts";
import { QWEN25_05B_SHAPES } from "../../tools/shapes.ts";
import { tokenizerDir } from "../helpers/tokenizers.ts";

let work: string;
before(async () => {
  work = await mkdtemp(join(tmpdir(), "abliterate-memory-"));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

describe("memory on the stock wasm backend", () => {
  it("a matMul whose weight XNNPACK cannot pack throws instead of returning garbage", async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ["--import", "tsx", join(PACKAGE_ROOT, "test", "helpers", "fill-heap.ts")],
      { cwd: PACKAGE_ROOT, env: { ...process.env, ABLITERATE_BLAS: "off" }, timeout: 300_000, maxBuffer: 1 << 20 },
    );
    assert.match(
      stdout,
      new RegExp(
        String.raw`^threw: the wasm backend's XNNPACK could not compute a matMul of \[4,2048\] by \[2048,4096\] \(status ` +
          String.raw`6: out of memory, while packing its copy of the weight\); its output would be garbage, so the run stops`,
      ),
    );
  });

  it("Qwen2.5-0.5B's shapes run the whole pipeline, and the wasm heap stays within the estimate", async () => {
    assert.equal((await backendInfo()).blas, undefined);
    const dir = join(work, "qwen2.5-0.5b-shapes");
    await writeRandomCheckpoint(dir, QWEN25_05B_SHAPES, { dtype: "BF16", seed: 5 });
    await cp(await tokenizerDir("qwen3"), dir, { recursive: true });
    const report = await runPipeline({
      model: dir,
      outDir: join(work, "run"),
      nTrain: 2,
      nVal: 2,
      nTest: 2,
      maxNewTokens: 2,
      evalNewTokens: 2,
      topK: 1,
      maxCandidates: 2,
      selectionFilters: { klThreshold: Infinity, induceThreshold: -Infinity }, // random weights refuse nothing
    });
    assert.equal(report.verify.passed, true, JSON.stringify(report.verify));
    assert.equal(report.verify.reference, "in-memory orthogonalisation, rounded to BF16");
    const { estimatedPeakBytes, wasmHeapBytes } = report.memory;
    assert.ok(
      wasmHeapBytes! <= estimatedPeakBytes,
      `the wasm heap grew to ${wasmHeapBytes} bytes, above the estimate of ${estimatedPeakBytes}`,
    );
    assert.ok(estimatedPeakBytes <= 0.85 * 4 * 1024 ** 3);
  });
});
