// Pipeline stages against the float64 reference: directions, refusal scores, KL, orthogonalisation, export.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { cp, mkdtemp, readdir, readFile, rm, writeFile, mkdir, appendFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it, before, after } from "node:test";
import {
  actName,
  collectMeanActivations,
  computeDirections,
  directionAblationHooks,
  exportAbliterated,
  klDivergence,
  lastPositionLogits,
  loadDirections,
  loadModel,
  orthogonalizeModel,
  refusalScore,
  residualWriteComponent,
  saveDirections,
  unitVector,
  usable,
  verifyExport,
  CheckpointWeights,
  type HookedModel,
} from "../src/index.ts";
import { writerDirection } from "../src/pipeline/orthogonalize.ts";
import { assertClose, lastLogits, LOGIT_TOLERANCE, modelDir, reference, REFERENCE_ARCHS, SANDWICH_ARCHS } from "./helpers/reference.ts";

let work: string;
before(async () => {
  work = await mkdtemp(join(tmpdir(), "abliterate-pipeline-"));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

async function sha(path: string, tensor: string): Promise<string> {
  const w = await CheckpointWeights.open(path);
  const h = createHash("sha256")
    .update(await w.readBytes(tensor))
    .digest("hex");
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
      assertClose(
        base.map((r) => refusalScore(r, ref.refusal_tokens)),
        ref.refusal_score,
        LOGIT_TOLERANCE,
        "refusal_score",
      );
      assertClose(
        ablated.map((r) => refusalScore(r, ref.refusal_tokens)),
        ref.refusal_score_ablated,
        LOGIT_TOLERANCE,
        "refusal_score_ablated",
      );
      assertClose(
        base.map((r, i) => klDivergence(r, ablated[i])),
        ref.kl_base_vs_ablated,
        LOGIT_TOLERANCE,
        "kl_base_vs_ablated",
      );
    });

    it("orthogonalised weights in memory give the reference's logits, and write nothing along the direction", async () => {
      const unit = unitVector(ref.direction);
      const m = await loadModel(modelDir(arch));
      orthogonalizeModel(m, unit);
      assertClose(await lastLogits(m, ref.seqs), ref.ortho_last_logits, LOGIT_TOLERANCE, "ortho_last_logits");
      const writes = residualWriteComponent(m, unit, ref.seqs);
      assert.ok(writes < 1e-5, `largest write along the direction ${writes}`);
      if (ref.resid_write_v_component_max !== undefined)
        assert.ok(ref.resid_write_v_component_max < 1e-12, "the reference's exact edit writes nothing along v");
      m.dispose();
    });

    if (SANDWICH_ARCHS.includes(arch)) {
      it("sandwich norms: the naive edit (against r itself) leaves a component in every write, as the reference measures", async () => {
        const unit = unitVector(ref.direction);
        const m = await loadModel(modelDir(arch));
        orthogonalizeModel(m, unit, { naive: true });
        assertClose(await lastLogits(m, ref.seqs), ref.naive_ortho_last_logits!, LOGIT_TOLERANCE, "naive_ortho_last_logits");
        const writes = residualWriteComponent(m, unit, ref.seqs);
        assert.ok(
          Math.abs(writes - ref.naive_ortho_resid_write_v_component_max!) < 1e-4,
          `naive writes ${writes}, reference ${ref.naive_ortho_resid_write_v_component_max}`,
        );
        assert.ok(writes > 0.05, `the naive edit's leftover ${writes} should be sizeable`);
        m.dispose();
      });
    }

    for (const variant of ["f32", "bf16", "sharded"] as const) {
      it(
        `export round trip from ${variant}: unchanged tensors byte-identical, logits equal the reference's orthogonalised ` + `model`,
        async () => {
          const unit = unitVector(ref.direction);
          const out = join(work, `${arch}-${variant}`);
          const result = await exportAbliterated(modelDir(arch, variant), out, unit);
          const prefix = ref.text_weight_prefix ?? "";
          const sourceConfig = JSON.parse(await readFile(join(modelDir(arch, variant), "config.json"), "utf8"));
          const tied = (sourceConfig.text_config ?? sourceConfig).tie_word_embeddings === true;
          assert.equal(result.untied, tied);
          assert.deepEqual(
            result.edited.sort(),
            [
              `${prefix}model.embed_tokens.weight`,
              ...[0, 1, 2].flatMap((l) => [
                `${prefix}model.layers.${l}.mlp.down_proj.weight`,
                `${prefix}model.layers.${l}.self_attn.o_proj.weight`,
              ]),
            ].sort(),
          );
          const source = await CheckpointWeights.open(modelDir(arch, variant));
          const exported = await CheckpointWeights.open(out);
          assert.deepEqual(exported.files, source.files, "shard layout kept");
          for (const name of source.names) {
            const a = source.info(name);
            const b = exported.info(name);
            assert.equal(b.dtype, a.dtype, `${name} keeps its dtype`);
            if (!result.edited.includes(name))
              assert.equal(await sha(out, name), await sha(modelDir(arch, variant), name), `${name} copied byte for byte`);
          }
          for (const name of ref.non_text_tensors ?? []) assert.ok(exported.has(name), `non-text tensor ${name} kept`);
          if (tied)
            assert.equal(
              await sha(out, `${prefix}lm_head.weight`),
              await sha(modelDir(arch, variant), `${prefix}model.embed_tokens.weight`),
              "untied lm_head is the original embedding",
            );
          await source.close();
          await exported.close();
          const configText = await readFile(join(out, "config.json"), "utf8");
          const config = JSON.parse(configText);
          assert.equal(config.tie_word_embeddings, false);
          // Edited as text: every other field keeps its exact form (15.0 stays 15.0 for strict loaders).
          assert.equal(
            configText,
            (await readFile(join(modelDir(arch, variant), "config.json"), "utf8")).replace(
              /"tie_word_embeddings": true/g,
              '"tie_word_embeddings": false',
            ),
          );
          if (sourceConfig.text_config) {
            assert.equal(config.text_config.tie_word_embeddings, false);
            assert.deepEqual(
              { ...config, tie_word_embeddings: true, text_config: { ...config.text_config, tie_word_embeddings: true } },
              sourceConfig,
              "the multimodal config is kept, untied",
            );
          }
          const reloaded = await loadModel(out);
          const original = await loadModel(modelDir(arch, variant));
          if (variant === "bf16") {
            // Each edited bf16 tensor is the exact result, computed here in float64 from the bf16 source,
            // rounded to float32 and then to bf16: within half a bf16 ulp (a relative 2^-8) plus a float32 rounding.
            const src = await CheckpointWeights.open(modelDir(arch, variant));
            const written = await CheckpointWeights.open(out);
            const postNorm = (key: string) => src.readFloat32(key);
            const norms = new Map<string, Float32Array>();
            for (const n of src.names) if (/post_(attention|feedforward)_layernorm/.test(n)) norms.set(n, await postNorm(n));
            for (const name of result.edited) {
              const u = writerDirection(name, original.arch, unit, (k) => norms.get(k)!);
              const w = await src.readFloat32(name);
              const [rows, cols] = src.info(name).shape;
              const exact = new Float64Array(w.length);
              if (name.endsWith("embed_tokens.weight")) {
                for (let i = 0; i < rows; i++) {
                  let c = 0;
                  for (let j = 0; j < cols; j++) c += w[i * cols + j] * u[j];
                  for (let j = 0; j < cols; j++) exact[i * cols + j] = w[i * cols + j] - c * u[j];
                }
              } else {
                for (let j = 0; j < cols; j++) {
                  let c = 0;
                  for (let i = 0; i < rows; i++) c += u[i] * w[i * cols + j];
                  for (let i = 0; i < rows; i++) exact[i * cols + j] = w[i * cols + j] - u[i] * c;
                }
              }
              const stored = await written.readFloat32(name);
              for (let i = 0; i < stored.length; i++) {
                assert.ok(
                  Math.abs(stored[i] - exact[i]) <= Math.abs(exact[i]) * (2 ** -8 + 2 ** -24),
                  `${name}[${i}]: stored ${stored[i]}, exact ${exact[i]}`,
                );
              }
            }
            await src.close();
            await written.close();
            // The whole-model check of the export: against the same edit in memory, rounded to BF16 as stored.
            const verification = await verifyExport(original, reloaded, unit, ref.seqs, { maxNewTokens: 4 });
            assert.equal(verification.reference, "in-memory orthogonalisation, rounded to BF16");
            assert.ok(verification.passed, JSON.stringify(verification));
          } else {
            assertClose(await lastLogits(reloaded, ref.seqs), ref.ortho_last_logits, LOGIT_TOLERANCE, "exported vs ortho_last_logits");
            if (!SANDWICH_ARCHS.includes(arch)) {
              // On a pre-norm model the exported weights compute exactly what the ablation hooks do.
              const ablation = directionAblationHooks(original, unit);
              const hooked = lastPositionLogits(original, ref.seqs, { fwdHooks: ablation.fwdHooks }).map((r) => [...r]);
              ablation.dispose();
              assertClose(await lastLogits(reloaded, ref.seqs), hooked, LOGIT_TOLERANCE, "exported vs hooked logits");
            }
          }
          reloaded.dispose();
          original.dispose();
        },
      );
    }
  });
}

describe("untieConfig", () => {
  it("sets tie_word_embeddings to false, inserting it where absent, and leaves every other byte's meaning and form", async () => {
    const { untieConfig } = await import("../src/export/safetensors.ts");
    const plain = untieConfig('{\n  "model_type": "gemma",\n  "final_logit_softcapping": 30.0\n}\n', false);
    assert.match(plain, /"final_logit_softcapping": 30.0/);
    assert.deepEqual(JSON.parse(plain), { model_type: "gemma", final_logit_softcapping: 30, tie_word_embeddings: false });
    const nested = untieConfig('{"model_type": "gemma3", "text_config": {"rope_theta": 1000000.0, "tie_word_embeddings": true}}', true);
    assert.match(nested, /"rope_theta": 1000000.0/);
    assert.deepEqual(JSON.parse(nested), {
      model_type: "gemma3",
      tie_word_embeddings: false,
      text_config: { rope_theta: 1e6, tie_word_embeddings: false },
    });
  });
});

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
      assert.ok(
        Math.abs(dot(d.raw, m)) < 1e-9 * Math.sqrt(dot(m, m)) * (d.norm + 1),
        `${d.hook} ${d.layer} not orthogonal to the harmless mean`,
      );
      // raw = projected + c * m for some c: the residual of plain - projected is parallel to m.
      const diff = Array.from(plain[i].raw, (x, j) => x - d.raw[j]);
      const c = dot(diff, m) / dot(m, m);
      assert.ok(
        diff.every((x, j) => Math.abs(x - c * m[j]) < 1e-9),
        "projection removed more than the harmless-mean component",
      );
    }
    model.dispose();
  });
});

describe("directions files", () => {
  it("save and load with layer, hook and position in the metadata", async () => {
    const model = await loadModel(modelDir("llama"));
    const ref = reference("llama");
    const directions = computeDirections(
      await collectMeanActivations(model, ref.harmful, { tokenOffsets: [-2, -1] }),
      await collectMeanActivations(model, ref.harmless, { tokenOffsets: [-2, -1] }),
    );
    assert.equal(directions.length, 3 * 3 * 2);
    const path = join(work, "directions.safetensors");
    await saveDirections(path, directions, { model: "llama" });
    await assert.rejects(saveDirections(path, directions), /directions.safetensors exists already/);
    await saveDirections(path, directions, {}, { overwrite: true });
    const loaded = await loadDirections(path);
    assert.deepEqual(
      loaded.map((d) => [d.layer, d.hook, d.tokenOffset]),
      directions.map((d) => [d.layer, d.hook, d.tokenOffset]),
    );
    assertClose(loaded[5].raw, directions[5].raw, 1e-6, "raw direction");
    const { saveMeanActivations, loadMeanActivations } = await import("../src/index.ts");
    const means = await collectMeanActivations(model, ref.harmful, { tokenOffsets: [-2, -1] });
    await saveMeanActivations(join(work, "means.safetensors"), means);
    const back = await loadMeanActivations(join(work, "means.safetensors"));
    assert.deepEqual(
      [back.tokenOffsets, back.hooks, back.count, back.nLayers, back.dModel],
      [[-2, -1], ["resid_pre", "resid_mid", "resid_post"], 6, 3, 64],
    );
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
    await assert.rejects(
      exportAbliterated(modelDir("llama"), out, unitVector(new Float32Array(10).fill(1))),
      /direction has 10 values, but the model's d_model \(hidden_size\) is 64/,
    );
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
    assert.throws(
      () => usable(zero[0]),
      /direction blocks.0.hook_resid_pre@-1 is all zeros: the harmful and harmless means are identical there/,
    );
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
  it("a non-empty output folder is refused, forced or not, unless it is an earlier export; kept intact", async () => {
    const out = join(work, "occupied");
    await mkdir(out);
    await writeFile(join(out, "precious.txt"), "keep");
    for (const force of [false, true]) {
      await assert.rejects(
        exportAbliterated(modelDir("llama"), out, unitVector(ref.direction), { force }),
        /is not an export of this tool/,
      );
    }
    assert.equal(await readFile(join(out, "precious.txt"), "utf8"), "keep");
    const earlier = join(work, "earlier-export");
    await exportAbliterated(modelDir("llama"), earlier, unitVector(ref.direction));
    await assert.rejects(
      exportAbliterated(modelDir("llama"), earlier, unitVector(ref.direction)),
      /is not empty; pass --force \(force: true in code\) to replace it/,
    );
    await exportAbliterated(modelDir("llama"), earlier, unitVector(ref.direction), { force: true });
    assert.ok((await readdir(earlier)).includes("model.safetensors"));
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
    assert.deepEqual(
      (await readdir(work)).filter((f) => f.includes("partial")),
      [],
      "temporary folder removed",
    );
  });
  it("a scale outside [0, 1] or a bad layer range", async () => {
    await assert.rejects(
      exportAbliterated(modelDir("llama"), join(work, "s"), unitVector(ref.direction), { scale: 1.5 }),
      /scale must be between 0 and 1, got 1.5/,
    );
    await assert.rejects(
      exportAbliterated(modelDir("llama"), join(work, "s"), unitVector(ref.direction), { layers: [1, 3] }),
      /layer range \[1, 3\] is not within \[0, 2\]/,
    );
  });
});

describe("streaming orthogonalisation", () => {
  it("gives the same bytes piece by piece as the whole tensor at once, for every kind and dtype", async () => {
    const { orthogonalizeTensor } = await import("../src/pipeline/orthogonalize.ts");
    const { orthogonalizeStream } = await import("../src/export/stream.ts");
    const { encodeFromFloat32, decodeToFloat32 } = await import("../src/safetensors/dtype.ts");
    const d = 8;
    const unit = unitVector(Float64Array.from({ length: d }, (_, i) => Math.cos(i)));
    for (const [kind, shape] of [
      ["embedding", [13, d]],
      ["weight", [d, 11]],
      ["bias", [d]],
    ] as ["embedding" | "weight" | "bias", number[]][]) {
      for (const dtype of ["F32", "BF16", "F16"] as const) {
        const count = (shape as readonly number[]).reduce((a, b) => a * b, 1);
        const stored = encodeFromFloat32(
          Float32Array.from({ length: count }, (_, i) => Math.sin(i * 0.7)),
          dtype,
        );
        const whole = encodeFromFloat32(orthogonalizeTensor(kind, decodeToFloat32(stored, dtype), shape, unit, 0.75), dtype);
        const pieces: Uint8Array[] = [];
        for await (const p of orthogonalizeStream(kind, dtype, shape, unit, 0.75, async (s, e) => stored.slice(s, e), 40))
          pieces.push(p.slice()); // a piece is reused two pieces later
        assert.ok(pieces.length > 1 || kind === "bias", `${kind} ${dtype} streamed in one piece`);
        assert.deepEqual(Buffer.concat(pieces), Buffer.from(whole), `${kind} ${dtype}`);
        // As float32 (what the GGUF export converts further): the whole-tensor edit before any rounding.
        const exact = orthogonalizeTensor(kind, decodeToFloat32(stored, dtype), shape, unit, 0.75);
        const floats: Uint8Array[] = [];
        for await (const p of orthogonalizeStream(kind, dtype, shape, unit, 0.75, async (s, e) => stored.slice(s, e), 40, {
          float32: true,
        }))
          floats.push(p.slice());
        assert.deepEqual(
          Buffer.concat(floats),
          Buffer.from(exact.buffer, exact.byteOffset, exact.byteLength),
          `${kind} ${dtype} as float32`,
        );
      }
    }
  });
  it("the writer rejects a stream of the wrong length", async () => {
    const { writeSafetensors } = await import("../src/safetensors/write.ts");
    const path = join(work, "short-stream.safetensors");
    async function* twoBytes() {
      yield new Uint8Array(2);
    }
    await assert.rejects(
      writeSafetensors(path, [{ name: "t", dtype: "F32", shape: [1], bytes: twoBytes }]),
      /tensor t produced 2 bytes, expected 4 for F32 \[1\]/,
    );
  });
});
