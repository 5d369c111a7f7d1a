// Pipeline stages against the float64 reference: directions, refusal scores, KL, orthogonalisation, export.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { cp, mkdtemp, readdir, readFile, rm, writeFile, mkdir, appendFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it, before, after } from "node:test";
import {
  actName, collectMeanActivations, computeDirections, directionAblationHooks, exportAbliterated, klDivergence,
  lastPositionLogits, loadDirections, loadModel, orthogonalizeModel, refusalScore, saveDirections, unitVector, usable, CheckpointWeights,
  type HookedModel,
} from "../src/index.ts";
import { assertClose, lastLogits, LOGIT_TOLERANCE, modelDir, reference, REFERENCE_ARCHS } from "./helpers/reference.ts";

let work: string;
before(async () => {
  work = await mkdtemp(join(tmpdir(), "abliterate-pipeline-"));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

async function sha(path: string, tensor: string): Promise<string> {
  const w = await CheckpointWeights.open(path);
  const h = createHash("sha256").update(await w.readBytes(tensor)).digest("hex");
  await w.close();
  return h;
}

for (const arch of REFERENCE_ARCHS) {
  describe(`${arch}: pipeline stages match the reference`, () => {
    const ref = reference(arch);
    let model: HookedModel;
    before(async () => {
      model = await loadModel(modelDir(arch));
    });
    after(() => model.dispose());

    it("difference-of-means directions at the last position", async () => {
      const harmful = await collectMeanActivations(model, ref.harmful, { batchSize: 4 });
      const harmless = await collectMeanActivations(model, ref.harmless, { batchSize: 5 });
      const directions = computeDirections(harmful, harmless);
      for (const [name, expected] of Object.entries(ref.mean_diff_last)) {
        const d = directions.find((x) => actName(x.hook, x.layer) === name);
        assert.ok(d, `no direction for ${name}`);
        assertClose(d.raw, expected, LOGIT_TOLERANCE, `mean_diff_last ${name}`);
        assert.ok(Math.abs(d.norm - Math.hypot(...expected)) < LOGIT_TOLERANCE);
      }
    });

    it("refusal scores and KL with and without ablation", async () => {
      const base = await lastLogits(model, ref.seqs);
      const ablation = directionAblationHooks(model, unitVector(ref.direction));
      const ablated = lastPositionLogits(model, ref.seqs, { fwdHooks: ablation.fwdHooks });
      ablation.dispose();
      assertClose(base.map((r) => refusalScore(r, ref.refusal_tokens)), ref.refusal_score, LOGIT_TOLERANCE, "refusal_score");
      assertClose(ablated.map((r) => refusalScore(r, ref.refusal_tokens)), ref.refusal_score_ablated, LOGIT_TOLERANCE, "refusal_score_ablated");
      assertClose(base.map((r, i) => klDivergence(r, ablated[i])), ref.kl_base_vs_ablated, LOGIT_TOLERANCE, "kl_base_vs_ablated");
    });

    it("orthogonalised weights in memory give the reference's logits", async () => {
      const m = await loadModel(modelDir(arch));
      orthogonalizeModel(m, unitVector(ref.direction));
      assertClose(await lastLogits(m, ref.seqs), ref.ortho_last_logits, LOGIT_TOLERANCE, "ortho_last_logits");
      m.dispose();
    });

    for (const variant of ["f32", "bf16", "sharded"] as const) {
      it(`export round trip from ${variant}: unchanged tensors byte-identical, logits equal the hooked model's`, async () => {
        const out = join(work, `${arch}-${variant}`);
        const result = await exportAbliterated(modelDir(arch, variant), out, unitVector(ref.direction));
        const tied = arch === "qwen2" || arch === "gemma";
        assert.equal(result.untied, tied);
        assert.deepEqual(result.edited.sort(), ["model.embed_tokens.weight", ...[0, 1, 2].flatMap((l) => [`model.layers.${l}.mlp.down_proj.weight`, `model.layers.${l}.self_attn.o_proj.weight`])].sort());
        const source = await CheckpointWeights.open(modelDir(arch, variant));
        const exported = await CheckpointWeights.open(out);
        assert.deepEqual(exported.files, source.files, "shard layout kept");
        for (const name of source.names) {
          const a = source.info(name);
          const b = exported.info(name);
          assert.equal(b.dtype, a.dtype, `${name} keeps its dtype`);
          if (!result.edited.includes(name)) assert.equal(await sha(out, name), await sha(modelDir(arch, variant), name), `${name} copied byte for byte`);
        }
        if (tied) assert.equal(await sha(out, "lm_head.weight"), await sha(modelDir(arch, variant), "model.embed_tokens.weight"), "untied lm_head is the original embedding");
        await source.close();
        await exported.close();
        const config = JSON.parse(await readFile(join(out, "config.json"), "utf8"));
        assert.equal(config.tie_word_embeddings, false);
        // The exported model's logits equal the source model's with the ablation hooks.
        const reloaded = await loadModel(out);
        const hooked = await loadModel(modelDir(arch, variant));
        const ablation = directionAblationHooks(hooked, unitVector(ref.direction));
        const expected = lastPositionLogits(hooked, ref.seqs, { fwdHooks: ablation.fwdHooks }).map((r) => [...r]);
        ablation.dispose();
        if (variant === "bf16") {
          // Edited bf16 tensors are the float32 result rounded once to nearest bf16: within half a bf16 ulp
          // (at most a relative 2^-8) of the in-memory orthogonalisation of the same bf16 weights.
          const inMemory = await loadModel(modelDir(arch, variant));
          orthogonalizeModel(inMemory, unitVector(ref.direction));
          const written = await CheckpointWeights.open(out);
          for (const name of result.edited) {
            const values = name === "model.embed_tokens.weight" ? await inMemory.params.stored[name].data() : await inMemory.params.transposed[name].transpose().data();
            const stored = await written.readFloat32(name);
            for (let i = 0; i < stored.length; i++) {
              assert.ok(Math.abs(stored[i] - values[i]) <= Math.abs(values[i]) * 2 ** -8 + 1e-30, `${name}[${i}]: stored ${stored[i]}, float32 ${values[i]}`);
            }
          }
          await written.close();
          inMemory.dispose();
        } else {
          assertClose(await lastLogits(reloaded, ref.seqs), expected, LOGIT_TOLERANCE, "exported vs hooked logits");
          assertClose(await lastLogits(reloaded, ref.seqs), ref.ortho_last_logits, LOGIT_TOLERANCE, "exported vs ortho_last_logits");
        }
        reloaded.dispose();
        hooked.dispose();
      });
    }
  });
}

describe("projected directions", () => {
  it("are orthogonal to the harmless mean and keep the rest of the difference", async () => {
    const model = await loadModel(modelDir("llama"));
    const ref = reference("llama");
    const harmful = await collectMeanActivations(model, ref.harmful);
    const harmless = await collectMeanActivations(model, ref.harmless);
    const plain = computeDirections(harmful, harmless);
    const projected = computeDirections(harmful, harmless, { projectOutHarmlessMean: true });
    for (const [i, d] of projected.entries()) {
      const m = harmless.means.get(actName(d.hook, d.layer))![0];
      const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((s, x, j) => s + x * b[j], 0);
      assert.ok(Math.abs(dot(d.raw, m)) < 1e-9 * Math.sqrt(dot(m, m)) * (d.norm + 1), `${d.hook} ${d.layer} not orthogonal to the harmless mean`);
      // raw = projected + c * m for some c: the residual of plain - projected is parallel to m.
      const diff = Array.from(plain[i].raw, (x, j) => x - d.raw[j]);
      const c = dot(diff, m) / dot(m, m);
      assert.ok(diff.every((x, j) => Math.abs(x - c * m[j]) < 1e-9), "projection removed more than the harmless-mean component");
    }
    model.dispose();
  });
});

describe("directions files", () => {
  it("save and load with layer, hook and position in the metadata", async () => {
    const model = await loadModel(modelDir("llama"));
    const ref = reference("llama");
    const directions = computeDirections(await collectMeanActivations(model, ref.harmful, { tokenOffsets: [-2, -1] }), await collectMeanActivations(model, ref.harmless, { tokenOffsets: [-2, -1] }));
    assert.equal(directions.length, 3 * 3 * 2);
    const path = join(work, "directions.safetensors");
    await saveDirections(path, directions, { model: "llama" });
    await assert.rejects(saveDirections(path, directions), /directions.safetensors exists already/);
    await saveDirections(path, directions, {}, { overwrite: true });
    const loaded = await loadDirections(path);
    assert.deepEqual(loaded.map((d) => [d.layer, d.hook, d.tokenOffset]), directions.map((d) => [d.layer, d.hook, d.tokenOffset]));
    assertClose(loaded[5].raw, directions[5].raw, 1e-6, "raw direction");
    const { saveMeanActivations, loadMeanActivations } = await import("../src/index.ts");
    const means = await collectMeanActivations(model, ref.harmful, { tokenOffsets: [-2, -1] });
    await saveMeanActivations(join(work, "means.safetensors"), means);
    const back = await loadMeanActivations(join(work, "means.safetensors"));
    assert.deepEqual([back.tokenOffsets, back.hooks, back.count, back.nLayers, back.dModel], [[-2, -1], ["resid_pre", "resid_mid", "resid_post"], 6, 3, 64]);
    assertClose(back.means.get("blocks.1.hook_resid_mid")![1], means.means.get("blocks.1.hook_resid_mid")![1], 1e-5, "saved means");
    await assert.rejects(loadDirections(join(work, "means.safetensors")), /not a directions file written by abliterate/);
    model.dispose();
  });
});

describe("pipeline bad input: clear errors, nothing written or lost", () => {
  const ref = reference("llama");
  it("no instructions", async () => {
    const model = await loadModel(modelDir("llama"));
    await assert.rejects(collectMeanActivations(model, []), /no instructions were given/);
    model.dispose();
  });
  it("a direction whose size differs from the model's", async () => {
    const out = join(work, "wrong-size");
    await assert.rejects(exportAbliterated(modelDir("llama"), out, unitVector(new Float32Array(10).fill(1))), /direction has 10 values, but the model's d_model \(hidden_size\) is 64/);
    await assert.rejects(readdir(out), /ENOENT/);
  });
  it("an all-zero direction", async () => {
    assert.throws(() => unitVector(new Float32Array(64)), /all zeros: the harmful and harmless means are identical/);
    assert.throws(() => unitVector([1, NaN]), /direction contains NaN at index 1/);
    const model = await loadModel(modelDir("llama"));
    const same = await collectMeanActivations(model, ref.harmful);
    const zero = computeDirections(same, same);
    assert.equal(zero[0].norm, 0);
    assert.equal(zero[0].unit, undefined);
    assert.throws(() => usable(zero[0]), /direction blocks.0.hook_resid_pre@-1 is all zeros: the harmful and harmless means are identical there/);
    model.dispose();
  });
  it("an output folder equal to or inside the source", async () => {
    const source = join(work, "src-copy");
    await cp(modelDir("llama"), source, { recursive: true });
    const before = await readdir(source);
    await assert.rejects(exportAbliterated(source, source, unitVector(ref.direction)), /is the source folder/);
    await assert.rejects(exportAbliterated(source, join(source, "out"), unitVector(ref.direction)), /inside the source folder/);
    await assert.rejects(exportAbliterated(source, work, unitVector(ref.direction)), /contains the source folder/);
    assert.deepEqual(await readdir(source), before);
  });
  it("a non-empty output folder is refused unless forced, and kept intact", async () => {
    const out = join(work, "occupied");
    await mkdir(out);
    await writeFile(join(out, "precious.txt"), "keep");
    await assert.rejects(exportAbliterated(modelDir("llama"), out, unitVector(ref.direction)), /is not empty; pass force to replace it/);
    assert.equal(await readFile(join(out, "precious.txt"), "utf8"), "keep");
    await exportAbliterated(modelDir("llama"), out, unitVector(ref.direction), { force: true });
    assert.ok((await readdir(out)).includes("model.safetensors"));
  });
  it("a source that changes during export leaves no output", async () => {
    const source = join(work, "changing");
    await cp(modelDir("llama"), source, { recursive: true });
    const out = join(work, "changing-out");
    let touched = false;
    await assert.rejects(
      exportAbliterated(source, out, unitVector(ref.direction), {
        onProgress: () => {
          if (!touched) {
            touched = true;
            void appendFile(join(source, "model.safetensors"), Buffer.alloc(8));
          }
        },
      }),
      /changed during the export; nothing was written/,
    );
    await assert.rejects(readdir(out), /ENOENT/);
    assert.deepEqual((await readdir(work)).filter((f) => f.includes("partial")), [], "temporary folder removed");
  });
  it("a scale outside [0, 1] or a bad layer range", async () => {
    await assert.rejects(exportAbliterated(modelDir("llama"), join(work, "s"), unitVector(ref.direction), { scale: 1.5 }), /scale must be between 0 and 1, got 1.5/);
    await assert.rejects(exportAbliterated(modelDir("llama"), join(work, "s"), unitVector(ref.direction), { layers: [1, 3] }), /layer range \[1, 3\] is not within \[0, 2\]/);
  });
});

describe("streaming orthogonalisation", () => {
  it("gives the same bytes piece by piece as the whole tensor at once, for every kind and dtype", async () => {
    const { orthogonalizeStream, orthogonalizeTensor } = await import("../src/pipeline/orthogonalize.ts");
    const { encodeFromFloat32, decodeToFloat32 } = await import("../src/safetensors/dtype.ts");
    const d = 8;
    const unit = unitVector(Float64Array.from({ length: d }, (_, i) => Math.cos(i)));
    for (const [kind, shape] of [["embedding", [13, d]], ["weight", [d, 11]], ["bias", [d]]] as [("embedding" | "weight" | "bias"), number[]][]) {
      for (const dtype of ["F32", "BF16", "F16"] as const) {
        const count = (shape as readonly number[]).reduce((a, b) => a * b, 1);
        const stored = encodeFromFloat32(Float32Array.from({ length: count }, (_, i) => Math.sin(i * 0.7)), dtype);
        const whole = encodeFromFloat32(orthogonalizeTensor(kind, decodeToFloat32(stored, dtype), shape, unit, 0.75), dtype);
        const pieces: Uint8Array[] = [];
        for await (const p of orthogonalizeStream(kind, dtype, shape, unit, 0.75, async (s, e) => stored.slice(s, e), 40)) pieces.push(p);
        assert.ok(pieces.length > 1 || kind === "bias", `${kind} ${dtype} streamed in one piece`);
        assert.deepEqual(Buffer.concat(pieces), Buffer.from(whole), `${kind} ${dtype}`);
      }
    }
  });
  it("the writer rejects a stream of the wrong length", async () => {
    const { writeSafetensors } = await import("../src/safetensors/write.ts");
    const path = join(work, "short-stream.safetensors");
    async function* twoBytes() {
      yield new Uint8Array(2);
    }
    await assert.rejects(writeSafetensors(path, [{ name: "t", dtype: "F32", shape: [1], bytes: twoBytes }]), /tensor t produced 2 bytes, expected 4 for F32 \[1\]/);
  });
});
