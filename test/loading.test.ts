// Loading checkpoint folders: every kind of bad input gives a clear error naming the file and tensor.
import assert from "node:assert/strict";
import { cp, mkdtemp, readFile, rm, writeFile, unlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it, before, after } from "node:test";
import { backendInfo, initBackend, loadModel, parseConfig, actName, hookNames } from "../src/index.ts";
import { writeSafetensors } from "../src/safetensors/write.ts";
import { SafetensorsFile } from "../src/safetensors/read.ts";
import { modelDir } from "./helpers/reference.ts";

let work: string;
before(async () => {
  work = await mkdtemp(join(tmpdir(), "abliterate-load-"));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

async function copyModel(name: string): Promise<string> {
  const dir = join(work, name);
  await cp(modelDir("llama"), dir, { recursive: true });
  return dir;
}

/** Rewrite model.safetensors with one tensor changed (or dropped, with `replace` returning null). */
async function editWeights(dir: string, name: string, replace: (shape: number[]) => { shape: number[] } | null): Promise<void> {
  const path = join(dir, "model.safetensors");
  const st = await SafetensorsFile.open(path);
  const tensors = [];
  for (const n of st.names) {
    const info = st.info(n);
    const bytes = await st.readBytes(n);
    if (n !== name) tensors.push({ name: n, dtype: info.dtype, shape: info.shape, bytes: () => bytes });
    else {
      const r = replace(info.shape);
      if (r) tensors.push({ name: n, dtype: info.dtype, shape: r.shape, bytes: () => bytes });
    }
  }
  await st.close();
  await unlink(path);
  await writeSafetensors(path, tensors);
}

describe("loadModel bad input", () => {
  it("a folder without config.json", async () => {
    await assert.rejects(
      loadModel(join(work, "nowhere")),
      /nowhere\/config.json: cannot read config.json \(ENOENT\); is .* a Hugging Face checkpoint folder\?/,
    );
  });
  it("an unsupported model_type names it and lists the supported ones", async () => {
    const dir = await copyModel("gpt2");
    const config = JSON.parse(await readFile(join(dir, "config.json"), "utf8"));
    await writeFile(join(dir, "config.json"), JSON.stringify({ ...config, model_type: "gpt2" }));
    await assert.rejects(
      loadModel(dir),
      new RegExp(
        String.raw`config.json: model_type "gpt2" is not supported \(supported: llama` +
          String.raw`, mistral, qwen2, qwen3, gemma, gemma2, gemma3_text, gemma3, phi3\)`,
      ),
    );
  });
  it("a config field of the wrong type", () => {
    assert.throws(() => parseConfig({ model_type: "llama", hidden_size: "64" }, "x/config.json"), /x\/config.json: hidden_size: .*number/);
  });
  it("a tensor whose shape disagrees with config.json", async () => {
    const dir = await copyModel("transposed");
    await editWeights(dir, "model.layers.1.mlp.down_proj.weight", () => ({ shape: [160, 64] }));
    await assert.rejects(
      loadModel(dir),
      /model.safetensors: model.layers.1.mlp.down_proj.weight: expected \[64, 160\] from config.json, got \[160, 64\]/,
    );
  });
  it("a missing tensor", async () => {
    const dir = await copyModel("missing");
    await editWeights(dir, "model.layers.2.self_attn.o_proj.weight", () => null);
    await assert.rejects(
      loadModel(dir),
      /missing tensor model.layers.2.self_attn.o_proj.weight \(expected by config.json, model_type llama\)/,
    );
  });
  it("a folder with no weights", async () => {
    const dir = await copyModel("noweights");
    await unlink(join(dir, "model.safetensors"));
    await assert.rejects(loadModel(dir), /no model.safetensors or model.safetensors.index.json/);
  });
  it("a truncated weights file", async () => {
    const dir = await copyModel("truncated");
    const bytes = await readFile(join(dir, "model.safetensors"));
    await writeFile(join(dir, "model.safetensors"), bytes.subarray(0, bytes.length - 100));
    await assert.rejects(loadModel(dir), /model.safetensors: tensor .*: data_offsets .* run past the end of the data/);
  });
  it("a model too large for the wasm backend's 4 GB heap says so before reading any weight", async () => {
    const dir = join(work, "too-big");
    await (await import("node:fs/promises")).mkdir(dir);
    const config = {
      model_type: "llama",
      hidden_size: 4096,
      intermediate_size: 14336,
      num_hidden_layers: 32,
      num_attention_heads: 32,
      num_key_value_heads: 8,
      vocab_size: 128256,
    };
    await writeFile(join(dir, "config.json"), JSON.stringify(config));
    // Weights held in the heap (the only layout without a BLAS library). The advice is the wasm backend's,
    // whichever backend the suite runs on.
    const blasAdvice = (await initBackend({ backend: "wasm" })).blas
      ? ""
      : ", or install a BLAS library \\(libopenblas0-pthread\\) so that the weights are held outside the heap";
    await assert.rejects(
      loadModel(dir, { backend: "wasm", layout: "stored" }),
      new RegExp(
        `too-big: a batch of 1 prompt of up to 16 tokens needs about 37.5 GB \\(weights 29.9 GB, activations 0.0 GB, with a ` +
          `quarter more for the allocator and the heap's growth step\\), more than the 3.4 GB the wasm backend's 4 GB heap allows; ` +
          `even one prompt does not ` +
          `fit: use a smaller model or shorter prompts${blasAdvice}, or the tensorflow backend, whose memory is the machine's ` +
          `\\(--backend node: @tensorflow/tfjs-node, which npm run backend:tfjs-node builds offline\\)`,
      ),
    );
  });
  it("a model too large for the machine's RAM says so before reading any weight", async () => {
    const dir = join(work, "too-big-for-ram");
    await (await import("node:fs/promises")).mkdir(dir);
    // Llama-3.1-405B's shapes: 1.6 TB in float32.
    const config = {
      model_type: "llama",
      hidden_size: 16384,
      intermediate_size: 53248,
      num_hidden_layers: 126,
      num_attention_heads: 128,
      num_key_value_heads: 8,
      vocab_size: 128256,
    };
    await writeFile(join(dir, "config.json"), JSON.stringify(config));
    if ((await backendInfo()).blas) {
      // Outside the heap, the machine's RAM is the limit.
      await assert.rejects(
        loadModel(dir, { backend: "wasm" }),
        new RegExp(
          String.raw`too-big-for-ram: its weights need about 1511\.9 GB of RAM in float32 ` +
            String.raw`\(held outside the wasm heap on the native BLAS path\), more than the [\d.]+ GB \(80%\) of this machine's ` +
            String.raw`[\d.]+ GB; use a smaller model or a machine with more memory`,
        ),
      );
      // Held in bf16 as stored (config.json says so before any header is read): half the RAM, and it says how.
      await writeFile(join(dir, "config.json"), JSON.stringify({ ...config, torch_dtype: "bfloat16" }));
      await assert.rejects(
        loadModel(dir, { backend: "wasm", precision: "stored" }),
        new RegExp(
          String.raw`too-big-for-ram: its weights need about 756\.0 GB of RAM with its matrices in their stored 16 bits ` +
            String.raw`\(held outside the wasm heap on the native BLAS path\)`,
        ),
      );
    } else {
      await assert.rejects(
        loadModel(dir, { backend: "wasm" }),
        /too-big-for-ram: a batch of 1 prompt of up to 16 tokens needs about 18(89|90)\.\d GB \(weights 1511\.9 GB, /,
      );
      await assert.rejects(
        loadModel(dir, { backend: "wasm", layout: "native" }),
        /the layout option "native" needs the native BLAS path on the wasm backend; the backend is wasm without a BLAS library/,
      );
    }
  });
  it("a model without tokenizer files loads, and says so when the tokenizer is used", async () => {
    const model = await loadModel(modelDir("llama"));
    assert.equal(model.hasTokenizer, false);
    assert.throws(
      () => model.tokenizer,
      /tokenizer.json: cannot read tokenizer.json \(ENOENT\); a model folder needs tokenizer.json and tokenizer_config.json/,
    );
    assert.throws(() => model.tokenizeInstructions(["Hi"]), /cannot read tokenizer.json/);
    model.dispose();
  });
});

describe("backend", () => {
  it("takes the native BLAS path where a library is installed, and says why not where none is", async () => {
    const info = await backendInfo();
    if (info.name !== "wasm") return assert.equal(info.blas, undefined);
    if (process.env.ABLITERATE_REQUIRE_BLAS === "1")
      assert.ok(info.blas, `CI installs libopenblas0-pthread, yet: ${info.skipped.join("; ")}`);
    if (info.blas) assert.match(info.device, /matMul by native BLAS \(.+, \d+ threads\)/);
    else
      assert.ok(
        info.skipped.some((s) => /^native BLAS: /.test(s)),
        info.skipped.join("; "),
      );
    const { enableBlas } = await import("../src/blas/library.ts");
    if (!info.blas)
      assert.match(
        enableBlas("/no/such/libblas.so").skipped!,
        /native BLAS: none usable \(\/no\/such\/libblas.so: .*\); install libopenblas0-pthread/,
      );
  });
  it("reports the active backend and device", async () => {
    const info = await backendInfo();
    assert.ok(["node-gpu", "node", "wasm", "cpu"].includes(info.name));
    assert.ok(info.device.length > 0);
  });
  it("rejects an unknown backend name", async () => {
    await assert.rejects(
      initBackend({ backend: "tpu" as never }),
      /unknown backend "tpu" \(from the backend option\); choose one of node-gpu, node, wasm, cpu/,
    );
  });
});

describe("hook names", () => {
  it("follow TransformerLens", () => {
    assert.equal(actName("resid_pre", 3), "blocks.3.hook_resid_pre");
    assert.equal(actName("embed"), "hook_embed");
    assert.equal(actName("normalized"), "ln_final.hook_normalized");
    assert.equal(hookNames(2).length, 1 + 2 * 5 + 1);
    assert.throws(() => actName("resid_post"), /needs a layer index/);
  });
});
