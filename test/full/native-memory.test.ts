// Memory on the native BLAS path: the weights are held outside the wasm heap, so a model larger than the
// heap runs the whole pipeline, and the heap holds only what the estimate says (activations, small weights).
// Without a BLAS library the same model is refused before any weight is read.
import assert from "node:assert/strict";
import { cp, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it, before, after } from "node:test";
import { architectureFor, backendInfo, loadModel, parseConfig, planWeights, runPipeline, WASM_HEAP_LIMIT_BYTES } from "../../src/index.ts";
import { writeRandomCheckpoint } from "../../tools/random-checkpoint.ts";
import { QWEN25_15B_SHAPES } from "../../tools/shapes.ts";
import { tokenizerDir } from "../helpers/tokenizers.ts";

let work: string;
before(async () => {
  work = await mkdtemp(join(tmpdir(), "abliterate-native-memory-"));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

describe("memory on the native BLAS path", () => {
  it(
    "Qwen2.5-1.5B's shapes (5.8 GiB of float32 weights, more than the 4 GiB heap) run the whole pipeline on the native path, " +
      "the heap within the estimate (without BLAS: refused before loading)",
    async () => {
      const dir = join(work, "qwen2.5-1.5b-shapes");
      if (!(await backendInfo()).blas) {
        // Refused from config.json alone, before any weight is read.
        await mkdir(dir);
        await writeFile(join(dir, "config.json"), JSON.stringify(QWEN25_15B_SHAPES));
        await assert.rejects(
          loadModel(dir),
          new RegExp(
            String.raw`qwen2\.5-1\.5b-shapes: a batch of 1 prompt of up to 16 tokens needs about 7\.3 GB \(weights 5\.8 GB, .*more ` +
              String.raw`than the 3\.4 GB the wasm backend's 4 GB heap allows; even one prompt does not fit: .*install a BLAS library`,
          ),
        );
        return;
      }
      await writeRandomCheckpoint(dir, QWEN25_15B_SHAPES, { dtype: "BF16", seed: 7 });
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
      // The float32 weights alone are larger than the whole heap could ever be.
      const config = parseConfig(QWEN25_15B_SHAPES);
      const { weightBytes, nativeBytes } = planWeights(config, architectureFor(config), await backendInfo());
      assert.ok(nativeBytes! > 0.99 * weightBytes, "the matrices are held outside the heap");
      assert.ok(weightBytes > WASM_HEAP_LIMIT_BYTES && wasmHeapBytes! < WASM_HEAP_LIMIT_BYTES / 2, `heap ${wasmHeapBytes} bytes`);
    },
  );
});
