// The architectures added after the first four: the whole pipeline on a checkpoint of each new fixture's
// shapes with its family's real tokenizer (random weights, the tokenizer's vocabulary), configs without
// layer_types, and bad configs.
import assert from "node:assert/strict";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it, before, after } from "node:test";
import { loadModel, parseConfig, runPipeline } from "../../src/index.ts";
import { writeRandomCheckpoint } from "../../tools/random-checkpoint.ts";
import { assertClose, lastLogits, LOGIT_TOLERANCE, modelDir, reference, type ReferenceArch } from "../helpers/reference.ts";
import { tokenizerDir, type TokenizerFamily } from "../helpers/tokenizers.ts";

let work: string;
before(async () => {
  work = await mkdtemp(join(tmpdir(), "abliterate-archs-"));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

/**
 * Each new fixture with its family's tokenizer and that tokenizer's vocabulary and special ids (and what else the family's config changes).
 */
const FAMILIES: { arch: ReferenceArch; tokenizer: TokenizerFamily; ids: Record<string, unknown> }[] = [
  { arch: "qwen3", tokenizer: "qwen3", ids: { vocab_size: 151936, bos_token_id: 151643, eos_token_id: 151645, pad_token_id: 151643 } },
  { arch: "gemma2", tokenizer: "gemma2", ids: { vocab_size: 256000, bos_token_id: 2, eos_token_id: [1, 107], pad_token_id: 0 } },
  { arch: "gemma3_text", tokenizer: "gemma3", ids: { vocab_size: 262144, bos_token_id: 2, eos_token_id: [1, 106], pad_token_id: 0 } },
  { arch: "gemma3", tokenizer: "gemma3", ids: { vocab_size: 262144, bos_token_id: 2, eos_token_id: [1, 106], pad_token_id: 0 } },
  { arch: "phi3", tokenizer: "phi3", ids: { vocab_size: 32064, bos_token_id: 1, eos_token_id: [32000, 32007], pad_token_id: 32000 } },
  // Phi-4-mini: phi3 with a tied embedding and 3/4 of each head rotated (its longrope factors cover those dimensions).
  {
    arch: "phi3",
    tokenizer: "phi4mini",
    ids: {
      vocab_size: 200064,
      bos_token_id: 199999,
      eos_token_id: [200020, 199999],
      pad_token_id: 199999,
      tie_word_embeddings: true,
      partial_rotary_factor: 0.75,
      rope_scaling: {
        type: "longrope",
        short_factor: [1, 1.05, 1.1, 1.15, 1.2, 1.25],
        long_factor: [1, 1.6, 2.56, 4.096, 6.5536, 10.4858],
      },
    },
  },
];

describe("the whole pipeline on each new architecture, with its family's real tokenizer", () => {
  for (const { arch, tokenizer, ids } of FAMILIES) {
    it(`${arch} (${tokenizer} tokenizer)`, async () => {
      const dir = join(work, `${arch}-${tokenizer}-real-vocab`);
      const fixture = JSON.parse(await readFile(join(modelDir(arch), "config.json"), "utf8"));
      // The fixture's shapes at the tokenizer's vocabulary (a multimodal config keeps it in text_config).
      const config = fixture.text_config ? { ...fixture, ...ids, text_config: { ...fixture.text_config, ...ids } } : { ...fixture, ...ids };
      await writeRandomCheckpoint(dir, config, { seed: 7 });
      await cp(await tokenizerDir(tokenizer), dir, { recursive: true });
      const out = join(work, `${arch}-${tokenizer}-run`);
      // Random weights refuse nothing, so the filters are opened: what is tested is that every stage runs.
      const report = await runPipeline({
        model: dir,
        outDir: out,
        nTrain: 4,
        nVal: 4,
        nTest: 4,
        batchSize: 4,
        maxNewTokens: 3,
        evalNewTokens: 3,
        topK: 1,
        selectionFilters: { klThreshold: Infinity, induceThreshold: -Infinity },
      });
      assert.equal(report.nLayers, 3);
      assert.equal(report.verify.passed, true, JSON.stringify(report.verify));
      assert.equal(
        report.verify.reference,
        ["gemma2", "gemma3_text", "gemma3"].includes(arch) ? "in-memory orthogonalisation" : "ablation hooks",
      );
      assert.ok(report.verify.writeComponent! < 1e-4, `writes along the direction ${report.verify.writeComponent}`);
      const exported = await loadModel(report.exportDir);
      assert.equal(exported.config.model_type, arch);
      assert.equal(exported.tokenizer.formatInstruction("Hi"), (await loadModel(dir)).tokenizer.formatInstruction("Hi"));
      exported.dispose();
    });
  }
});

describe("sliding windows without layer_types fall back to each family's legacy rule", () => {
  for (const arch of ["gemma2", "gemma3_text"] as const) {
    it(arch, async () => {
      const dir = join(work, `${arch}-legacy`);
      await cp(modelDir(arch), dir, { recursive: true });
      const config = JSON.parse(await readFile(join(dir, "config.json"), "utf8"));
      delete config.layer_types; // gemma2: layers 0, 2 slide; gemma3_text: sliding_window_pattern 2 gives the same
      await writeFile(join(dir, "config.json"), JSON.stringify(config));
      const model = await loadModel(dir);
      assertClose(
        await lastLogits(model, reference(arch).seqs),
        reference(arch).last_logits,
        LOGIT_TOLERANCE,
        "last_logits without layer_types",
      );
      model.dispose();
    });
  }
});

describe("bad configs of the new architectures", () => {
  const base = async (arch: ReferenceArch) => JSON.parse(await readFile(join(modelDir(arch), "config.json"), "utf8"));
  it("an unsupported model_type names it and every supported one", async () => {
    assert.throws(
      () => parseConfig({ model_type: "gpt_neox" }, "c.json"),
      new RegExp(
        String.raw`c.json: model_type "gpt_neox" is not supported \(supported: llama,` +
          String.raw` mistral, qwen2, qwen3, gemma, gemma2, gemma3_text, gemma3, phi3\)`,
      ),
    );
  });
  it("a multimodal Gemma 3 config without text_config", async () => {
    const { text_config: _, ...config } = await base("gemma3");
    assert.throws(
      () => parseConfig(config, "c.json"),
      /c.json: model_type "gemma3" keeps its language model in text_config, which is missing/,
    );
  });
  it("a field of text_config of the wrong type is named with its path", async () => {
    const config = await base("gemma3");
    assert.throws(
      () => parseConfig({ ...config, text_config: { ...config.text_config, hidden_size: "64" } }, "c.json"),
      /c.json: text_config.hidden_size: .*number/,
    );
  });
  it("longrope factors of the wrong length", async () => {
    const config = await base("phi3");
    assert.throws(
      () => parseConfig({ ...config, rope_scaling: { ...config.rope_scaling, long_factor: [1, 2] } }, "c.json"),
      /c.json: rope_scaling.long_factor must list 8 numbers \(rotary dimension \/ 2\), got 2/,
    );
  });
  it("an activation the architecture does not have", async () => {
    const llama = await base("llama");
    const gemma2 = await base("gemma2");
    assert.throws(
      () => parseConfig({ ...llama, hidden_act: "relu" }, "c.json"),
      /c.json: activation "relu" is not supported for model_type llama \(supported: silu, swish\)/,
    );
    assert.throws(
      () => parseConfig({ ...gemma2, hidden_activation: "gelu" }, "c.json"),
      /activation "gelu" is not supported for model_type gemma2 \(supported: gelu_pytorch_tanh\)/,
    );
  });
  it("layer_types of the wrong length, and sizes past any real model", async () => {
    const gemma2 = await base("gemma2");
    const qwen3 = await base("qwen3");
    assert.throws(
      () => parseConfig({ ...gemma2, layer_types: ["full_attention"] }, "c.json"),
      /c.json: layer_types has 1 entries for 3 layers/,
    );
    assert.throws(() => parseConfig({ ...qwen3, num_hidden_layers: 1e7 }, "c.json"), /c.json: num_hidden_layers: .*1024/);
  });
  it('Phi-3\'s first configs name longrope "su", as Hugging Face accepts', async () => {
    const config = await base("phi3");
    const parsed = parseConfig({ ...config, rope_scaling: { ...config.rope_scaling, type: "su" } });
    assert.equal(parsed.rope_scaling?.type, "longrope");
  });
});
