// The edit variants (#25) checked against float64 values computed here, independently, from their definitions:
// the strength kernel per component (heretic), biprojection and norm preservation (grimjim), on every
// reference architecture and stored dtype. Every edited tensor lies within one ulp of its stored dtype of the
// exact value; every other tensor is byte-identical to the source.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  CheckpointWeights,
  compareEdits,
  editHooks,
  exportAbliterated,
  exportGguf,
  generateCompletions,
  lastPositionLogits,
  loadModel,
  orthogonalizeModel,
  unitVector,
  verifyExport,
} from "../src/index.ts";
import { dataFile, DEMO_MODEL_DIR } from "../src/paths.ts";
import { loadInstructions } from "../src/data/instructions.ts";
import { measure } from "../src/pipeline/evaluate.ts";
import type { OrthogonalizeOptions, StrengthKernel } from "../src/pipeline/orthogonalize.ts";
import { kernelStrength } from "../src/pipeline/orthogonalize.ts";
import { exportPeftAdapter } from "../src/export/peft.ts";
import { SafetensorsFile } from "../src/safetensors/read.ts";
import { writeRandomCheckpoint } from "../tools/random-checkpoint.ts";
import { ggufTensorBytes, readGguf } from "./helpers/gguf.ts";
import { lastLogits, maxAbsDiff, modelDir, reference, REFERENCE_ARCHS, SANDWICH_ARCHS } from "./helpers/reference.ts";

let work: string;
before(async () => {
  work = await mkdtemp(join(tmpdir(), "abliterate-variants-"));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

// ---- The definitions, in float64, written without the package's kernels ----

const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};
const unit = (v: ArrayLike<number>) => {
  const n = Math.sqrt(dot(v, v));
  return Float64Array.from(v, (x) => x / n);
};
/** unit(r - (r.h) h) for h = unit(mean). */
const projected = (r: Float64Array, mean: ArrayLike<number>) => {
  const h = unit(mean);
  const c = dot(r, h);
  return unit(r.map((x, i) => x - c * h[i]));
};
/** lambda_l of heretic's kernel, from the issue's formula. */
const lambda = (k: StrengthKernel, layer: number) => {
  const d = Math.abs(layer - k.maxWeightPosition);
  return d <= k.minWeightDistance
    ? k.maxWeight + (k.minWeightDistance === 0 ? 0 : (d / k.minWeightDistance) * (k.minWeight - k.maxWeight))
    : 0;
};
/** v - s (v.r) r, rescaled to |v| when `keepNorm`. */
const editVector = (v: Float64Array, r: Float64Array, s: number, keepNorm: boolean) => {
  const c = dot(v, r);
  const e = v.map((x, i) => x - s * c * r[i]);
  if (!keepNorm) return e;
  const after = Math.sqrt(dot(e, e));
  return after === 0 ? e : e.map((x) => (x * Math.sqrt(dot(v, v))) / after);
};

/** Harmless means to biproject against: fixed pseudo-random vectors with a shared offset, like real means. */
function harmlessMeans(nLayers: number, d: number): Float64Array[] {
  let state = 12345;
  const next = () => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
  const shared = Float64Array.from({ length: d }, next);
  return Array.from({ length: nLayers }, () => Float64Array.from(shared, (x) => x + 0.5 * next()));
}

/** One ulp of `x` in a stored dtype (the spacing of its binade; subnormals at the dtype's smallest step). */
function ulp(x: number, dtype: string): number {
  const mantissa = dtype === "F32" ? 23 : dtype === "F16" ? 10 : 7;
  const minExponent = dtype === "F16" ? -14 : -126;
  const e = x === 0 ? minExponent : Math.max(minExponent, Math.floor(Math.log2(Math.abs(x))));
  return 2 ** (e - mantissa);
}

interface Variant {
  name: string;
  options: (nLayers: number, d: number) => OrthogonalizeOptions;
}
const VARIANTS: Variant[] = [
  {
    name: "strength kernels per component (fractional peak)",
    options: (n) => ({
      kernels: {
        attention: { maxWeight: 1.2, maxWeightPosition: (n - 1) / 2 + 0.25, minWeight: 0.3, minWeightDistance: n / 2 },
        mlp: { maxWeight: 0.9, maxWeightPosition: 0, minWeight: 0.5, minWeightDistance: 1 },
      },
    }),
  },
  { name: "norm-preserving", options: () => ({ normPreserving: true }) },
  { name: "biprojected", options: (n, d) => ({ biprojectAgainst: harmlessMeans(n, d) }) },
  {
    name: "biprojected, norm-preserving, with kernels and strength 0.7 on the embedding",
    options: (n, d) => ({
      biprojectAgainst: harmlessMeans(n, d),
      normPreserving: true,
      scale: 0.7,
      kernels: { attention: { maxWeight: 1, maxWeightPosition: n - 1, minWeight: 0.6, minWeightDistance: 2 } },
    }),
  },
];

for (const arch of REFERENCE_ARCHS) {
  describe(`${arch}: edit variants against float64 values from their definitions`, () => {
    const ref = reference(arch);
    for (const dtype of ["f32", "bf16", "f16"] as const) {
      for (const variant of VARIANTS) {
        it(`${variant.name}, from ${dtype}: edited tensors within 1 ulp, the rest byte-identical`, async () => {
          const r = unit(ref.direction);
          const source = await CheckpointWeights.open(modelDir(arch, dtype));
          const config = await loadModel(modelDir(arch, dtype)).then((m) => {
            const c = { nLayers: m.nLayers, d: m.dModel, prefix: m.arch.keyPrefix };
            m.dispose();
            return c;
          });
          const options = variant.options(config.nLayers, config.d);
          const out = join(work, `${arch}-${dtype}-${VARIANTS.indexOf(variant)}`);
          const result = await exportAbliterated(modelDir(arch, dtype), out, unitVector(ref.direction), options);
          const written = await CheckpointWeights.open(out);
          try {
            const expectedEdited: string[] = [];
            for (const name of source.names) {
              const rest = name.slice(config.prefix.length);
              const layerMatch = /^model\.layers\.(\d+)\.(self_attn\.o_proj|mlp\.down_proj)\.(weight|bias)$/.exec(rest);
              const isEmbedding = name.startsWith(config.prefix) && rest === "model.embed_tokens.weight";
              if (!layerMatch && !isEmbedding) {
                if (/lm_head/.test(name) || !written.has(name)) continue; // an untied head is checked by the export tests
                assert.deepEqual(await written.readBytes(name), await source.readBytes(name), `${name} copied byte for byte`);
                continue;
              }
              const layer = layerMatch ? Number(layerMatch[1]) : 0;
              const component = layerMatch?.[2] === "self_attn.o_proj" ? "attention" : "mlp";
              const kernel = layerMatch ? options.kernels?.[component] : undefined;
              const s = kernel ? lambda(kernel, layer) : (options.scale ?? 1);
              if (s === 0 && kernel) {
                assert.deepEqual(await written.readBytes(name), await source.readBytes(name), `${name} (strength 0) copied byte for byte`);
                continue;
              }
              expectedEdited.push(name);
              let v = options.biprojectAgainst ? projected(r, options.biprojectAgainst[layer]) : r;
              if (layerMatch && SANDWICH_ARCHS.includes(arch)) {
                const norm = `${config.prefix}model.layers.${layer}.${
                  component === "attention" ? "post_attention_layernorm" : "post_feedforward_layernorm"
                }.weight`;
                const w = await source.readFloat32(norm);
                v = unit(v.map((x, i) => (1 + w[i]) * x));
              }
              const w = await source.readFloat32(name);
              const { shape, dtype: stored } = source.info(name);
              const exact = new Float64Array(w.length);
              const keepNorm = Boolean(options.normPreserving) && layerMatch?.[3] !== "bias";
              if (layerMatch?.[3] === "weight") {
                // A column of W [d_model, in] is what writes to the residual stream.
                const [rows, cols] = shape;
                for (let j = 0; j < cols; j++) {
                  const col = Float64Array.from({ length: rows }, (_, i) => w[i * cols + j]);
                  editVector(col, v, s, keepNorm).forEach((x, i) => (exact[i * cols + j] = x));
                }
              } else {
                const d = config.d;
                for (let o = 0; o < w.length; o += d) exact.set(editVector(Float64Array.from(w.subarray(o, o + d)), v, s, keepNorm), o);
              }
              const got = await written.readFloat32(name);
              let worst = 0;
              for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - exact[i]) / ulp(exact[i], stored));
              assert.ok(worst <= 1, `${name} (${stored}): ${worst.toFixed(3)} ulp from the exact value`);
            }
            assert.deepEqual([...result.edited].sort(), expectedEdited.sort(), "the tensors edited");
          } finally {
            await source.close();
            await written.close();
          }
        });
      }
    }
  });
}

describe("edit variants as hooks: the baked plain edit's logits on every model without post-sublayer norms", () => {
  for (const arch of REFERENCE_ARCHS.filter((a) => !SANDWICH_ARCHS.includes(a))) {
    it(`${arch}: kernels, biprojection and strength 0.8 on the embedding, hooked vs baked within 1e-4`, async () => {
      const ref = reference(arch);
      const r = unitVector(ref.direction);
      const model = await loadModel(modelDir(arch));
      const n = model.nLayers;
      const options: OrthogonalizeOptions = {
        scale: 0.8,
        biprojectAgainst: harmlessMeans(n, model.dModel),
        kernels: {
          attention: { maxWeight: 1.3, maxWeightPosition: (n - 1) / 2, minWeight: 0.2, minWeightDistance: n / 3 },
          mlp: { maxWeight: 0.7, maxWeightPosition: n - 1.5, minWeight: 0.1, minWeightDistance: 1 },
        },
      };
      const plain = await lastLogits(model, ref.seqs);
      const hooks = editHooks(model, r, options);
      const hooked = await lastLogits(model, ref.seqs, hooks.fwdHooks);
      hooks.dispose();
      orthogonalizeModel(model, r, options);
      const baked = await lastLogits(model, ref.seqs);
      model.dispose();
      const diff = maxAbsDiff(hooked, baked);
      assert.ok(diff < 1e-4, `hooked vs baked: max |logit diff| ${diff}`);
      assert.ok(maxAbsDiff(plain, baked) > 100 * diff, "the edit changes the logits (the comparison is not vacuous)");
    });
  }
  it("the norm-preserving edit has no hook form: refused, saying why", async () => {
    const model = await loadModel(modelDir("llama"));
    assert.throws(
      () => editHooks(model, unitVector(reference("llama").direction), { normPreserving: true }),
      /no inference-time hook: it rescales/,
    );
    model.dispose();
  });
});

describe("edit variants: the kernel, the in-memory edit, and what is refused", () => {
  it("the kernel's strength: full at its position, linear to the minimum at the distance, 0 beyond", () => {
    const k = { maxWeight: 1.5, maxWeightPosition: 4.5, minWeight: 0.5, minWeightDistance: 2 };
    assert.equal(kernelStrength(k, 4.5), 1.5);
    assert.equal(kernelStrength(k, 5.5), 1);
    assert.equal(kernelStrength(k, 6.5), 0.5);
    assert.equal(kernelStrength(k, 7), 0);
    assert.equal(kernelStrength(k, 2), 0);
    assert.equal(kernelStrength({ ...k, minWeightDistance: 0 }, 4.5), 1.5);
  });

  it("the in-memory edit with every variant gives the export's logits (verifyExport, in-memory reference)", async () => {
    const ref = reference("llama");
    const original = await loadModel(modelDir("llama"));
    const options: OrthogonalizeOptions = {
      normPreserving: true,
      biprojectAgainst: harmlessMeans(original.nLayers, original.dModel),
      kernels: { mlp: { maxWeight: 1.1, maxWeightPosition: 1, minWeight: 0.4, minWeightDistance: 1.5 } },
    };
    const out = join(work, "llama-verify");
    await exportAbliterated(modelDir("llama"), out, unitVector(ref.direction), options);
    const exported = await loadModel(out);
    const v = await verifyExport(original, exported, unitVector(ref.direction), ref.seqs, {
      orthogonalize: options,
      maxNewTokens: 2,
    });
    assert.equal(v.reference, "in-memory orthogonalisation");
    assert.ok(v.passed, JSON.stringify(v));
    exported.dispose();
    original.dispose();
  });

  it("bad kernels and biprojection means are refused naming what is wrong, before anything is written", async () => {
    const ref = reference("llama");
    const out = join(work, "refused");
    const kernel = { maxWeight: 1, maxWeightPosition: 0, minWeight: 0, minWeightDistance: 1 };
    await assert.rejects(
      exportAbliterated(modelDir("llama"), out, unitVector(ref.direction), { kernels: { attention: { ...kernel, maxWeight: NaN } } }),
      /the attention kernel's maxWeight must be a finite number >= 0, got NaN/,
    );
    await assert.rejects(
      exportAbliterated(modelDir("llama"), out, unitVector(ref.direction), { kernels: { mlp: { ...kernel, maxWeightPosition: 99 } } }),
      /the mlp kernel's maxWeightPosition must be a layer index in \[0, \d+\], got 99/,
    );
    await assert.rejects(
      exportAbliterated(modelDir("llama"), out, unitVector(ref.direction), { biprojectAgainst: [new Float64Array(ref.direction.length)] }),
      /biprojection needs the harmless mean at resid_pre of each of the model's \d+ layers, got 1/,
    );
    const m = await loadModel(modelDir("llama"));
    const zeros = Array.from({ length: m.nLayers }, () => new Float64Array(m.dModel));
    m.dispose();
    await assert.rejects(
      exportAbliterated(modelDir("llama"), out, unitVector(ref.direction), { biprojectAgainst: zeros }),
      /the harmless mean at blocks\.0\.hook_resid_pre is all zeros/,
    );
  });
});

describe("the plain edit as a PEFT LoRA adapter (rank 1)", () => {
  for (const arch of REFERENCE_ARCHS) {
    it(`${arch}: W + B A in float64 is the exact plain edit (kernels, biprojection), with PEFT's names and config`, async () => {
      const ref = reference(arch);
      const r = unit(ref.direction);
      const source = await CheckpointWeights.open(modelDir(arch));
      const m = await loadModel(modelDir(arch));
      const { nLayers: n, dModel: d } = m;
      const prefix = m.arch.keyPrefix;
      m.dispose();
      const options: OrthogonalizeOptions = {
        biprojectAgainst: harmlessMeans(n, d),
        kernels: { attention: { maxWeight: 1.1, maxWeightPosition: 1.5, minWeight: 0.5, minWeightDistance: 1 } },
      };
      const out = join(work, `${arch}-peft`);
      try {
        const hasWriterBias = source.names.some((k) => /(o_proj|down_proj)\.bias$/.test(k));
        if (hasWriterBias) {
          await assert.rejects(exportPeftAdapter(modelDir(arch), out, unitVector(ref.direction), options), /which a LoRA adapter cannot/);
          return;
        }
        const { modules, untieBeforeMerging } = await exportPeftAdapter(modelDir(arch), out, unitVector(ref.direction), options);
        // A tied head shares the edited embedding: merging as it is would edit the head too, and llama.cpp fails.
        const sourceConfig = JSON.parse(await readFile(join(modelDir(arch), "config.json"), "utf8"));
        const tied = (sourceConfig.text_config ?? sourceConfig).tie_word_embeddings === true;
        assert.equal(untieBeforeMerging, tied);
        const readme = await readFile(join(out, "README.md"), "utf8");
        assert.equal(readme.includes("model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())"), tied);
        assert.equal(readme.includes("llama.cpp applies a LoRA of the embedding to the head"), tied);
        assert.match(readme, new RegExp(`convert_lora_to_gguf\\.py --base "${modelDir(arch)}"`));
        if (tied) {
          const kept = await exportPeftAdapter(modelDir(arch), `${out}-skip`, unitVector(ref.direction), {
            ...options,
            skipEmbedding: true,
          });
          assert.equal(kept.untieBeforeMerging, false, "the embedding is not edited: the adapter merges as it is");
        }
        const config = JSON.parse(await readFile(join(out, "adapter_config.json"), "utf8"));
        assert.equal(config.peft_type, "LORA");
        assert.equal(config.r, 1);
        assert.equal(config.lora_alpha, 1);
        assert.deepEqual(config.target_modules, modules);
        const adapter = await SafetensorsFile.open(join(out, "adapter_model.safetensors"));
        try {
          for (const module of modules) {
            // PEFT names the loaded model's modules: Gemma 3's checkpoint keeps its language model under
            // language_model.model., transformers 5 loads it as model.language_model.
            const key = prefix ? `${module.replace(/^model\.language_model\./, `${prefix}model.`)}.weight` : `${module}.weight`;
            if (prefix) assert.match(module, /^model\.language_model\.(embed_tokens|layers\.)/);
            const layer = Number(/layers\.(\d+)\./.exec(module)?.[1] ?? 0);
            const isEmbedding = module.endsWith("embed_tokens");
            const kernel = module.includes("o_proj") ? options.kernels!.attention : undefined;
            const s = kernel ? lambda(kernel, layer) : 1;
            let v = projected(r, options.biprojectAgainst![isEmbedding ? 0 : layer]);
            if (SANDWICH_ARCHS.includes(arch) && !isEmbedding) {
              const norm = module.includes("o_proj") ? "post_attention_layernorm" : "post_feedforward_layernorm";
              const normKey = `${prefix}model.layers.${layer}.${norm}.weight`;
              const w = await source.readFloat32(normKey);
              v = unit(v.map((x, i) => (1 + w[i]) * x));
            }
            const A = await adapter.readFloat32(`base_model.model.${module}.${isEmbedding ? "lora_embedding_A" : "lora_A.weight"}`);
            const B = await adapter.readFloat32(`base_model.model.${module}.${isEmbedding ? "lora_embedding_B" : "lora_B.weight"}`);
            const w = await source.readFloat32(key);
            const [rows, cols] = source.info(key).shape;
            let worst = 0;
            if (isEmbedding) {
              // PEFT adds (B A)^T: row i of E gains A_i B^T.
              for (let i = 0; i < rows; i++) {
                const row = Float64Array.from(w.subarray(i * cols, (i + 1) * cols));
                const exact = editVector(row, v, s, false);
                for (let j = 0; j < cols; j++)
                  worst = Math.max(worst, Math.abs(row[j] + A[i] * B[j] - exact[j]) / (2 ** -22 * Math.abs(A[i] * B[j]) + 1e-12));
              }
            } else {
              for (let j = 0; j < cols; j++) {
                const col = Float64Array.from({ length: rows }, (_, i) => w[i * cols + j]);
                const exact = editVector(col, v, s, false);
                for (let i = 0; i < rows; i++)
                  worst = Math.max(worst, Math.abs(col[i] + B[i] * A[j] - exact[i]) / (2 ** -22 * Math.abs(A[j] * B[i]) + 1e-12));
              }
            }
            assert.ok(worst <= 1, `${module}: W + B A is ${worst.toFixed(3)} of the float32 rounding bound from the exact edit`);
          }
          // The attention kernel reaches layers 1 and 2 only (|l - 1.5| <= 1); every MLP at full strength; the embedding.
          assert.equal(modules.filter((x) => x.includes("o_proj")).length, 2);
          assert.equal(modules.filter((x) => x.includes("down_proj")).length, n);
        } finally {
          await adapter.close();
        }
      } finally {
        await source.close();
      }
    });
  }
  it("an edit that changes a bias is refused in LoRA form, naming the bias, and nothing is written", async () => {
    const dir = join(work, "llama-with-biases");
    const config = JSON.parse(await readFile(join(modelDir("llama"), "config.json"), "utf8"));
    await writeRandomCheckpoint(dir, { ...config, attention_bias: true }, { dtype: "F32", seed: 5 });
    const out = join(work, "bias-peft");
    await assert.rejects(
      exportPeftAdapter(dir, out, unitVector(reference("llama").direction)),
      /the edit changes the bias model\.layers\.0\.self_attn\.o_proj\.bias, which a LoRA adapter cannot; export a checkpoint instead/,
    );
    assert.equal(await stat(out).catch(() => undefined), undefined, "no adapter folder");
  });

  it("the norm-preserving edit is refused in LoRA form, saying why", async () => {
    await assert.rejects(
      exportPeftAdapter(modelDir("llama"), join(work, "np-peft"), unitVector(reference("llama").direction), { normPreserving: true }),
      /no LoRA form: it rescales every column/,
    );
  });
});

describe("compareEdits: two variants side by side on one model, each undone", () => {
  it("measures each edit as a separately edited model measures, and leaves the model's outputs as they were", async () => {
    const model = await loadModel(DEMO_MODEL_DIR);
    const test = {
      harmful: await loadInstructions(dataFile("harmful", "test"), { limit: 4 }),
      harmless: await loadInstructions(dataFile("harmless", "test"), { limit: 4 }),
    };
    let state = 7;
    const r = unitVector(Float64Array.from({ length: model.dModel }, () => (state = (state * 48271) % 2147483647) / 2147483647 - 0.5));
    const before = lastPositionLogits(model, test.harmless);
    const edits = [
      { label: "plain", unit: r },
      {
        label: "norm-preserving, MLP kernel",
        unit: r,
        options: { normPreserving: true, kernels: { mlp: { maxWeight: 1, maxWeightPosition: 2, minWeight: 0.5, minWeightDistance: 2 } } },
      },
    ];
    const compared = await compareEdits(model, edits, test, { maxNewTokens: 4 });
    const after = lastPositionLogits(model, test.harmless);
    assert.deepEqual(after, before, "the model's logits are as before");
    model.dispose();
    assert.deepEqual(
      compared.map((c) => c.label),
      ["plain", "norm-preserving, MLP kernel"],
    );
    for (const [i, edit] of edits.entries()) {
      const separate = await loadModel(DEMO_MODEL_DIR);
      const original = await loadModel(DEMO_MODEL_DIR);
      const logits = lastPositionLogits(original, test.harmless);
      const answers = await generateCompletions(original, test.harmless, { maxNewTokens: 4 });
      original.dispose();
      const edited = orthogonalizeModel(separate, edit.unit, edit.options);
      const measured = await measure(separate, test, { maxNewTokens: 4, original: { logits, answers } });
      separate.dispose();
      assert.equal(compared[i].edited, edited.length);
      assert.ok(compared[i].maxWeightChange > 0);
      assert.equal(compared[i].harmlessKl, measured.harmlessKl, `${edit.label}: KL`);
      assert.deepEqual(compared[i].answers, measured.answers, `${edit.label}: answers`);
    }
  });
});

describe("edit variants in a GGUF file", () => {
  it("apply --format gguf writes the same edited tensors as the safetensors export (float32, every variant at once)", async () => {
    const m = await loadModel(DEMO_MODEL_DIR);
    const { nLayers: n, dModel: d } = m;
    m.dispose();
    let state = 3;
    const r = unitVector(Float64Array.from({ length: d }, () => (state = (state * 48271) % 2147483647) / 2147483647 - 0.5));
    const options: OrthogonalizeOptions = {
      normPreserving: true,
      biprojectAgainst: harmlessMeans(n, d),
      kernels: { mlp: { maxWeight: 1.1, maxWeightPosition: 2, minWeight: 0.4, minWeightDistance: 2 } },
    };
    const folder = join(work, "demo-variants");
    const file = join(work, "demo-variants.gguf");
    await exportAbliterated(DEMO_MODEL_DIR, folder, r, options);
    await exportGguf(DEMO_MODEL_DIR, file, { ...options, unit: r, type: "f32" });
    const { metadata } = await readGguf(file);
    assert.equal(metadata["abliterate.norm_preserving"], true);
    assert.equal(metadata["abliterate.biprojected"], true);
    assert.deepEqual(JSON.parse(String(metadata["abliterate.kernels"])), options.kernels);
    const exported = await CheckpointWeights.open(folder);
    try {
      const pairs: [string, string][] = [["model.embed_tokens.weight", "token_embd.weight"]];
      for (let l = 0; l < n; l++)
        pairs.push(
          [`model.layers.${l}.self_attn.o_proj.weight`, `blk.${l}.attn_output.weight`],
          [`model.layers.${l}.mlp.down_proj.weight`, `blk.${l}.ffn_down.weight`],
        );
      for (const [key, name] of pairs) {
        const want = await exported.readFloat32(key);
        const bytes = await ggufTensorBytes(file, name, want.length * 4);
        const got = new Float32Array(bytes.buffer, bytes.byteOffset, want.length);
        assert.deepEqual(got, want, `${name} is ${key} as the safetensors export wrote it`);
      }
    } finally {
      await exported.close();
    }
  });
});
