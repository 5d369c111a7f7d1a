// Matrices held in their checkpoint's 16 bits on the native path (#29): products widened a tile at a time give
// the float32 matrix's products, and a model loaded so gives the references' logits in half the memory.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { exportAbliterated } from "../src/export/safetensors.ts";
import { expectedExport } from "../src/export/verify.ts";
import { SafetensorsFile } from "../src/safetensors/read.ts";
import { backendInfo, initBackend, loadModel, orthogonalizeModel, unitVector } from "../src/index.ts";
import { NativeMatrix, type HalfDtype } from "../src/blas/native-matrix.ts";
import { referenceSgemm } from "./helpers/reference-sgemm.ts";
import { decodeToFloat32, encodeFromFloat32 } from "../src/safetensors/dtype.ts";
import { assertClose, lastLogits, LOGIT_TOLERANCE, modelDir, reference, REFERENCE_ARCHS } from "./helpers/reference.ts";

let seed = 11;
const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5;

/** A [rows, cols] matrix of 16-bit values, as stored and as float32 (the same values, widened). */
function halfMatrix(dtype: HalfDtype, rows: number, cols: number): { half: NativeMatrix; float: NativeMatrix } {
  const bytes = encodeFromFloat32(Float32Array.from({ length: rows * cols }, random), dtype);
  const words = new Uint16Array(bytes.buffer, bytes.byteOffset, rows * cols);
  return {
    half: new NativeMatrix({ dtype, words }, [rows, cols]),
    float: new NativeMatrix(decodeToFloat32(bytes, dtype), [rows, cols]),
  };
}

describe("a native matrix held in 16 bits", () => {
  // 300 x 500 values: more than one tile of 2^16 values (131 rows a tile), the last one short.
  for (const dtype of ["BF16", "F16"] as const) {
    it(`${dtype}: products, tile by tile, equal the float32 matrix's, both ways round`, () => {
      const [rows, cols, m] = [300, 500, 3];
      const { half, float } = halfMatrix(dtype, rows, cols);
      assert.equal(half.dtype, dtype);
      assert.equal(half.bytes, 2 * rows * cols);
      assert.equal(float.bytes, 4 * rows * cols);
      // x [m, cols] times W^T: each tile gives its own columns of the output, each entry summed as one.
      const x = Float32Array.from({ length: m * cols }, random);
      const [got, want] = [new Float32Array(m * rows).fill(NaN), new Float32Array(m * rows)];
      half.multiply(referenceSgemm, true, m, cols, x, got);
      float.multiply(referenceSgemm, true, m, cols, x, want);
      assert.deepEqual(got, want);
      // dy [m, rows] times W (the gradient's product): the tiles' shares added in float32.
      const dy = Float32Array.from({ length: m * rows }, random);
      const [gotT, wantT] = [new Float32Array(m * cols).fill(NaN), new Float32Array(m * cols)];
      half.multiply(referenceSgemm, false, m, rows, dy, gotT);
      float.multiply(referenceSgemm, false, m, rows, dy, wantT);
      for (let e = 0; e < wantT.length; e++)
        assert.ok(Math.abs(gotT[e] - wantT[e]) <= 1e-5 * (1 + Math.abs(wantT[e])), `entry ${e}: ${gotT[e]} against ${wantT[e]}`);
    });
  }

  it("reads rows and whole values exactly, and an edit makes it float32", () => {
    const { half, float } = halfMatrix("BF16", 40, 7);
    assert.deepEqual(half.rows(5, 3, new Float32Array(21)), float.values.subarray(35, 56));
    assert.deepEqual(half.values, float.values);
    const copy = half.clone();
    assert.equal(copy.dtype, "BF16");
    half.values = half.values.map((v) => 2 * v);
    assert.equal(half.dtype, "F32");
    assert.equal(half.bytes, 4 * 40 * 7);
    assert.deepEqual(copy.values, float.values, "the clone keeps its own values");
    assert.throws(() => (half.values = new Float32Array(3)), /shape \[40,7\] needs 280 values, got 3/);
  });
});

describe("loadModel with the stored precision", async () => {
  await initBackend();
  const blas = (await backendInfo()).blas !== undefined;
  if (!blas) {
    it("is refused without the native BLAS path, by name", async () => {
      await assert.rejects(
        loadModel(modelDir("llama", "bf16"), { precision: "stored" }),
        /stored weight precision .* needs the native layout/,
      );
    });
    return;
  }
  for (const arch of REFERENCE_ARCHS) {
    it(`${arch}: bf16 and f16 matrices held as stored give the references' logits in half the memory`, async () => {
      const ref = reference(arch);
      for (const variant of ["bf16", "f16"] as const) {
        const asFloat = await loadModel(modelDir(arch, variant), { precision: "float32" });
        const asStored = await loadModel(modelDir(arch, variant), { precision: "stored" });
        try {
          const matrices = Object.values(asStored.params.native!);
          assert.ok(matrices.length > 0 && matrices.every((m) => m.dtype === variant.toUpperCase()), `${variant}: every matrix as stored`);
          assert.equal(asStored.weightPlan.nativeBytes! * 2, asFloat.weightPlan.nativeBytes);
          assert.equal(asStored.weightPlan.weightBytes, asFloat.weightPlan.weightBytes - asStored.weightPlan.nativeBytes!);
          const logits = variant === "bf16" ? ref.bf16_last_logits : ref.f16_last_logits;
          assertClose(await lastLogits(asStored, ref.seqs), logits, LOGIT_TOLERANCE, `${variant}_last_logits, stored precision`);
          const [a, b] = [
            await asFloat.generate(ref.seqs, { maxNewTokens: 4, stopTokens: [] }),
            await asStored.generate(ref.seqs, { maxNewTokens: 4, stopTokens: [] }),
          ];
          assert.deepEqual(b.tokens, a.tokens, `${variant}: greedy tokens`);
        } finally {
          asFloat.dispose();
          asStored.dispose();
        }
      }
    });
  }

  // The export's check edits the source in memory (a 16-bit checkpoint's rounding is not the hooks'): a model
  // held as stored is edited in its 16 bits, without a float32 copy of every edited matrix.
  for (const [arch, dtype] of [
    ["llama", "bf16"],
    ["qwen2", "f16"],
    ["gemma2", "bf16"],
  ] as const)
    for (const variant of ["plain", "kernel, norm-preserving"] as const)
      it(`${arch} ${dtype}, ${variant}: the export's check edits 16-bit matrices in their dtype, to the export's bytes`, async () => {
        const ref = reference(arch);
        const unit = unitVector(Float64Array.from(ref.direction));
        const options =
          variant === "plain"
            ? {}
            : {
                normPreserving: true,
                kernels: { attention: { maxWeight: 1.1, maxWeightPosition: 1, minWeight: 0.4, minWeightDistance: 1 } },
              };
        const out = await mkdtemp(join(tmpdir(), "abliterate-precision-"));
        const [asStored, asFloat] = [
          await loadModel(modelDir(arch, dtype), { precision: "stored" }),
          await loadModel(modelDir(arch, dtype), { precision: "float32" }),
        ];
        try {
          const { edited } = await exportAbliterated(modelDir(arch, dtype), join(out, "export"), unit, options);
          const exported = await SafetensorsFile.open(join(out, "export", "model.safetensors"));
          const prompts = ref.seqs.slice(0, 2);
          const check = { orthogonalize: options, maxNewTokens: 3, inPlace: true };
          const [stored, float] = [
            await expectedExport(asStored, unit, prompts, check),
            await expectedExport(asFloat, unit, prompts, check),
          ];
          try {
            for (const key of edited.filter((k) => asStored.params.native?.[k])) {
              const m = asStored.params.native![key];
              assert.equal(m.dtype, dtype.toUpperCase(), `${key} is still held in ${dtype}`);
              const bytes = await exported.readBytes(key);
              const words = m.halfValues!.words;
              assert.deepEqual(new Uint8Array(words.buffer, words.byteOffset, words.byteLength), bytes, `${key}: the export's bytes`);
            }
            assert.deepEqual(stored.answerTokens, float.answerTokens);
            for (const [i, logits] of stored.logits.entries())
              assert.ok(maxAbs(logits, float.logits[i]) < 1e-4, `logits of prompt ${i}: ${maxAbs(logits, float.logits[i])}`);
          } finally {
            await exported.close();
          }
        } finally {
          asStored.dispose();
          asFloat.dispose();
          await rm(out, { recursive: true, force: true });
        }
      });

  it("an in-memory edit of a model held as stored equals the same edit of the float32 model", async () => {
    const [asFloat, asStored] = [
      await loadModel(modelDir("llama", "bf16"), { precision: "float32" }),
      await loadModel(modelDir("llama", "bf16"), { precision: "stored" }),
    ];
    try {
      const direction = unitVector(Float64Array.from({ length: asFloat.dModel }, (_, i) => Math.sin(i + 1)));
      assert.deepEqual(orthogonalizeModel(asStored, direction), orthogonalizeModel(asFloat, direction));
      for (const [key, m] of Object.entries(asFloat.params.native!)) assert.deepEqual(asStored.params.native![key].values, m.values, key);
    } finally {
      asFloat.dispose();
      asStored.dispose();
    }
  });

  it("refuses a precision it does not know, naming where it came from", async () => {
    await assert.rejects(
      loadModel(modelDir("llama"), { precision: "half" as "stored" }),
      /the precision option must be float32 or stored, got "half"/,
    );
    const saved = process.env.ABLITERATE_WEIGHT_PRECISION;
    process.env.ABLITERATE_WEIGHT_PRECISION = "bf16";
    try {
      await assert.rejects(loadModel(modelDir("llama")), /ABLITERATE_WEIGHT_PRECISION, which .* must be float32 or stored, got "bf16"/);
    } finally {
      if (saved === undefined) delete process.env.ABLITERATE_WEIGHT_PRECISION;
      else process.env.ABLITERATE_WEIGHT_PRECISION = saved;
    }
  });
});

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}
