// The GGUF export, judged by llama.cpp itself (node-llama-cpp's prebuilt CPU binaries): the file format
// read back by @huggingface/gguf, Q8_0 byte for byte against llama.cpp's own quantiser, every reference
// architecture's next-token log-probabilities against the float64 references, the demo model's greedy
// answers, tokenizer and chat template against the engine's, and the bad paths.
import assert from "node:assert/strict";
import { cp, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  DEMO_MODEL_DIR,
  exportGguf,
  llamaCppChatTokens,
  llamaCppDetokenize,
  llamaCppGreedy,
  llamaCppTokenize,
  loadGguf,
  loadInstructions,
  loadModel,
  loadPlanted,
  refusalRate,
  unitVector,
  verifyGguf,
  type HookedModel,
} from "../src/index.ts";
import { encodeGgufHeader, quantizeQ8_0, tensorBytes, writeGguf } from "../src/export/gguf/write.ts";
import { permuteRopeRows } from "../src/export/gguf/export.ts";
import { byteLevelPreTokenizer, ggufVocab } from "../src/export/gguf/vocab.ts";
import { llamaCppLogProbs } from "../src/export/gguf/llama-cpp.ts";
import { quantizeWithLlamaCpp } from "../src/export/gguf/quantize.ts";
import { logSoftmax } from "../src/pipeline/scores.ts";
import { dataFile } from "../src/paths.ts";
import { writeRandomCheckpoint } from "../tools/random-checkpoint.ts";
import { ggufTensorBytes, readGguf, withByteTokenizer } from "./helpers/gguf.ts";
import { modelDir, reference, REFERENCE_ARCHS, type ReferenceArch } from "./helpers/reference.ts";
import { tokenizerDir, TOKENIZER_FAMILIES } from "./helpers/tokenizers.ts";

let work: string;
before(async () => {
  work = await mkdtemp(join(tmpdir(), "abliterate-gguf-"));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

/** Largest |a - b| between llama.cpp's log-probabilities and log-softmax of reference logits. */
function logProbGap(theirs: Float64Array, logits: readonly number[]): number {
  const ours = logSoftmax(logits);
  return Math.max(...ours.map((x, t) => Math.abs(x - theirs[t])));
}

describe("the GGUF file format", () => {
  it("a tensor given as pieces of whole rows is written as the whole tensor; too many or too few values are named", async () => {
    const values = Float32Array.from({ length: 4 * 64 }, (_, i) => Math.sin(i));
    const metadata = new Map([["general.architecture", { type: "string" as const, value: "llama" }]]);
    const whole = join(work, "whole.gguf");
    const pieces = join(work, "pieces.gguf");
    await writeGguf(whole, metadata, [{ name: "t", shape: [4, 64], type: "Q8_0", values: async () => values }]);
    async function* rows(extra = 0) {
      for (let r = 0; r < 4 + extra; r++) yield values.slice((r % 4) * 64, ((r % 4) + 1) * 64);
    }
    await writeGguf(pieces, metadata, [{ name: "t", shape: [4, 64], type: "Q8_0", values: () => rows() }]);
    assert.deepEqual(await readFile(pieces), await readFile(whole));
    await assert.rejects(
      writeGguf(join(work, "long.gguf"), metadata, [{ name: "t", shape: [4, 64], type: "Q8_0", values: () => rows(1) }]),
      /GGUF tensor t: more than 256 values for shape \[4,64\] \(256\)/,
    );
    await assert.rejects(
      writeGguf(join(work, "short.gguf"), metadata, [{ name: "t", shape: [4, 64], type: "Q8_0", values: () => rows(-1) }]),
      /GGUF tensor t: 192 values for shape \[4,64\] \(256\)/,
    );
  });
  it("header, metadata and tensor descriptions read back by @huggingface/gguf, data aligned to 32 bytes", async () => {
    const file = join(work, "format.gguf");
    const { header } = encodeGgufHeader(new Map(), []);
    assert.equal(header.subarray(0, 4).toString("ascii"), "GGUF");
    await exportGguf(DEMO_MODEL_DIR, file, { type: "q8_0" });
    const { metadata, tensorInfos, tensorDataOffset } = await readGguf(file);
    assert.equal(metadata.version, 3);
    assert.equal(metadata["general.architecture"], "llama");
    assert.equal(metadata["llama.block_count"], 6);
    assert.equal(metadata["llama.attention.head_count"], 4);
    assert.equal(metadata["tokenizer.ggml.model"], "gpt2");
    assert.equal(metadata["tokenizer.ggml.pre"], "gpt-2");
    assert.equal((metadata["tokenizer.ggml.tokens"] as string[]).length, 1024);
    assert.match(String(metadata["tokenizer.chat_template"]), /<\|assistant\|>/);
    assert.equal(Number(tensorDataOffset) % 32, 0);
    const embd = tensorInfos.find((t) => t.name === "token_embd.weight")!;
    assert.deepEqual(embd.shape.map(Number), [128, 1024]); // ggml order: the row length first
    assert.equal(embd.dtype, 8); // Q8_0
    assert.equal(tensorInfos.find((t) => t.name === "blk.0.attn_norm.weight")!.dtype, 0); // norms stay F32
    for (const t of tensorInfos) assert.equal(Number(t.offset) % 32, 0, t.name);
    assert.equal(tensorInfos.length, 3 + 6 * 9);
  });

  it("Q8_0 as llama.cpp's reference: d = max|x| / 127 in f16, halves rounded away from zero, a zero block stays zero", () => {
    const x = new Float32Array(64);
    x[0] = 127;
    x[1] = 2.5;
    x[2] = -2.5;
    x[3] = 0.49;
    const q = quantizeQ8_0(x);
    assert.equal(q.length, 68);
    assert.deepEqual([...q.subarray(0, 2)], [0x00, 0x3c]); // d = 127 / 127 = 1, which is 0x3c00 in f16
    assert.deepEqual([...new Int8Array(q.buffer, 2, 4)], [127, 3, -3, 0]);
    assert.deepEqual([...q.subarray(34)], new Array(34).fill(0));
    assert.throws(() => quantizeQ8_0(new Float32Array(33)), /multiple of 32/);
  });

  it("Q8_0 written here equals llama.cpp's own Q8_0 of the same float32 file, byte for byte", async () => {
    const f32 = join(work, "demo-f32.gguf");
    const ours = join(work, "demo-q8-ours.gguf");
    const theirs = join(work, "demo-q8-llama.gguf");
    await exportGguf(DEMO_MODEL_DIR, f32, { type: "f32" });
    await exportGguf(DEMO_MODEL_DIR, ours, { type: "q8_0" });
    await quantizeWithLlamaCpp(f32, theirs, "q8_0", { threads: 1 });
    const [a, b] = [await readGguf(ours), await readGguf(theirs)];
    let compared = 0;
    const quantised = a.tensorInfos.filter((t) => t.dtype === 8);
    for (const t of quantised) {
      const other = b.tensorInfos.find((u) => u.name === t.name)!;
      assert.equal(other.dtype, 8, `${t.name} is Q8_0 in llama.cpp's file too`);
      const size = tensorBytes("Q8_0", t.shape.map(Number).reverse());
      assert.ok((await ggufTensorBytes(ours, t.name, size)).equals(await ggufTensorBytes(theirs, t.name, size)), t.name);
      compared++;
    }
    assert.equal(compared, 44); // every matrix: 6 layers x 7, the embedding and the output head
  });

  it("general.name: a Hub snapshot's repository name; a Phi-3 model's name says phi3, which llama.cpp looks for", async () => {
    const snapshot = join(work, "hub", "models--someone--Tiny-Chat", "snapshots", "0123abcd");
    await cp(DEMO_MODEL_DIR, snapshot, { recursive: true });
    await exportGguf(snapshot, join(work, "hub.gguf"), { type: "f16" });
    assert.equal((await readGguf(join(work, "hub.gguf"))).metadata["general.name"], "Tiny-Chat");
    const phi = await withByteTokenizer(modelDir("phi3"), join(work, "tiny-mini"), 300);
    const { notes } = await exportGguf(phi, join(work, "tiny-mini.gguf"), { type: "f16" });
    assert.equal((await readGguf(join(work, "tiny-mini.gguf"))).metadata["general.name"], "phi3-tiny-mini");
    assert.match(notes.join("\n"), /llama.cpp recognises Phi-3 by name/);
  });

  it("llama.cpp's RoPE row permutation for llama and mistral: each head's two halves interleaved", () => {
    // 2 heads of 4 rows, 1 column: head rows [a0 a1 b0 b1] become [a0 b0 a1 b1].
    assert.deepEqual([...permuteRopeRows(Float32Array.from([0, 1, 2, 3, 4, 5, 6, 7]), 8, 1, 2)], [0, 2, 1, 3, 4, 6, 5, 7]);
  });
});

describe("llama.cpp matches the float64 reference of every architecture (float32 files)", () => {
  // llama.cpp's float32 path agrees with the references to about 1e-5 (measured up to 8.3e-6); its CPU GELU
  // rounds its input and output to float16 (ggml-cpu's GELU table), which moves Gemma's log-probabilities by
  // up to about 6e-3 (measured 5.5e-3).
  const tolerance = (arch: ReferenceArch) => (arch.startsWith("gemma") ? 2e-2 : 1e-4);
  for (const arch of REFERENCE_ARCHS) {
    it(arch, async () => {
      const ref = reference(arch);
      const dir = await withByteTokenizer(modelDir(arch), join(work, `ref-${arch}`), 300);
      const file = join(work, `ref-${arch}.gguf`);
      const { notes } = await exportGguf(dir, file, { type: "f32" });
      const model = await loadGguf(file);
      try {
        if (arch === "phi3") {
          // llama.cpp's context is at least 256 tokens, longer than this fixture's original 32: it uses the long factors.
          assert.match(notes.join("\n"), /longrope: llama.cpp uses the long factors whenever its context is longer than 32 tokens/);
          const gap = logProbGap(await llamaCppLogProbs(model, ref.long_seq!, 300), ref.long_last_logits![0]);
          assert.ok(gap < tolerance(arch), `long_last_logits: ${gap}`);
        } else {
          for (const [i, seq] of ref.seqs.entries()) {
            const gap = logProbGap(await llamaCppLogProbs(model, seq, 300), ref.last_logits[i]);
            assert.ok(gap < tolerance(arch), `last_logits[${i}]: ${gap}`);
          }
        }
        if (arch === "gemma2" || arch === "gemma3_text" || arch === "gemma3") assert.match(notes.join("\n"), /queries scaled by 0\.816497/);
      } finally {
        await model.dispose();
      }
    });
  }

  for (const arch of REFERENCE_ARCHS.filter((a) => a !== "phi3")) {
    it(`${arch}: an abliterated file computes the reference's orthogonalised model`, async () => {
      const ref = reference(arch);
      const dir = await withByteTokenizer(modelDir(arch), join(work, `ortho-${arch}`), 300);
      const file = join(work, `ortho-${arch}.gguf`);
      const { notes, edited } = await exportGguf(dir, file, { type: "f32", unit: unitVector(ref.direction) });
      assert.equal(edited.length, 1 + 2 * 3);
      const model = await loadGguf(file);
      try {
        const gaps = await Promise.all(
          ref.seqs.map(async (seq, i) => logProbGap(await llamaCppLogProbs(model, seq, 300), ref.ortho_last_logits[i])),
        );
        if (arch === "gemma" || arch === "gemma2") {
          // llama.cpp's gemma and gemma2 always use the token embedding as output head: the edited one. Said, and measurable.
          assert.match(notes.join("\n"), new RegExp(`${arch} always uses the token embedding as its output head`));
          assert.ok(Math.max(...gaps) > tolerance(arch), `gemma2's tied head should differ: ${gaps}`);
        } else assert.ok(Math.max(...gaps) < tolerance(arch), `ortho_last_logits: ${gaps}`);
      } finally {
        await model.dispose();
      }
    });
  }
});

describe("the demo model in llama.cpp, original and abliterated", () => {
  let source: HookedModel;
  let harmful: string[];
  let harmless: string[];
  before(async () => {
    source = await loadModel(DEMO_MODEL_DIR);
    harmful = await loadInstructions(dataFile("harmful", "test"), { limit: 16 });
    harmless = await loadInstructions(dataFile("harmless", "test"), { limit: 16 });
  });
  after(() => source.dispose());

  it(
    "the tokenizer gives the engine's ids on plain, non-ASCII and special-token text, and the chat template the engine's " + "prompt",
    async () => {
      const file = join(work, "demo-tok.gguf");
      await exportGguf(DEMO_MODEL_DIR, file, { type: "f16" });
      const model = await loadGguf(file);
      try {
        for (const text of [
          "Write a short guide on stealing a car.",
          "héllo wörld — ünïcode ✓ 日本語",
          "<|user|>\nhi<|end|>\n<|assistant|>\n",
          "  two  spaces\n\nand\ttabs",
          "don't I'll we've",
        ]) {
          assert.deepEqual(llamaCppTokenize(model, text), source.tokenizer.encode(text), text);
        }
        for (const q of [...harmful.slice(0, 3), ...harmless.slice(0, 3)])
          assert.deepEqual(await llamaCppChatTokens(model, q), source.tokenizer.encode(source.tokenizer.formatInstruction(q)), q);
      } finally {
        await model.dispose();
      }
    },
  );

  for (const abliterated of [false, true]) {
    for (const type of ["f32", "f16", "q8_0"] as const) {
      it(`${abliterated ? "abliterated" : "original"}, ${type}: llama.cpp's greedy answers ${
        type === "q8_0" ? "agree on at " + "least 90% of tokens" : "equal the engine's"
      }`, async () => {
        const planted = (await loadPlanted(DEMO_MODEL_DIR))!;
        const unit = abliterated ? unitVector(planted.direction) : undefined;
        const file = join(work, `demo-${abliterated}-${type}.gguf`);
        await exportGguf(DEMO_MODEL_DIR, file, { type, unit });
        const v = await verifyGguf(source, file, [...harmful, ...harmless], { type, unit, maxNewTokens: 16 });
        assert.equal(v.reference, abliterated ? "ablation hooks" : "the source model");
        assert.ok(v.passed, JSON.stringify(v));
        assert.ok(v.sameChatTokens);
        if (type === "q8_0") assert.ok(v.tokenAgreement >= 0.9, `token agreement ${v.tokenAgreement}`);
        else assert.equal(v.sameGreedyAnswers, true);
        if (type === "f32") assert.ok(v.maxAbsLogProbDiff < 1e-3, `${v.maxAbsLogProbDiff}`);
      });
    }
  }

  it("refusal before and after abliteration, measured through llama.cpp, is the engine's", async () => {
    const planted = (await loadPlanted(DEMO_MODEL_DIR))!;
    const rates: number[] = [];
    for (const unit of [undefined, unitVector(planted.direction)]) {
      const file = join(work, `demo-refusal-${unit ? "abl" : "orig"}.gguf`);
      await exportGguf(DEMO_MODEL_DIR, file, { type: "f32", unit });
      const model = await loadGguf(file);
      try {
        const answers = await Promise.all(
          harmful.map(async (q) =>
            llamaCppDetokenize(model, await llamaCppGreedy(model, source.tokenizer.encode(source.tokenizer.formatInstruction(q)), 16)),
          ),
        );
        rates.push(refusalRate(answers));
      } finally {
        await model.dispose();
      }
    }
    const engine = refusalRate((await source.generate(source.tokenizeInstructions(harmful), { maxNewTokens: 16 })).texts);
    assert.equal(rates[0], engine);
    assert.ok(rates[0] >= 0.9, `before: ${rates[0]}`);
    assert.ok(rates[1] <= 0.1, `after: ${rates[1]}`);
  });

  it("a k-quant by llama.cpp's own quantiser (q4_k_m) loads and answers", async () => {
    const file = join(work, "demo-q4km.gguf");
    const { notes } = await exportGguf(DEMO_MODEL_DIR, file, { type: "q4_k_m" });
    assert.match(notes.join("\n"), /quantised to q4_k_m by llama.cpp's llama_model_quantize from a f32 file/);
    const { tensorInfos } = await readGguf(file);
    // The demo's rows of 128 are not whole k-quant blocks (256): llama.cpp falls back to Q5_0 / Q8_0 there.
    assert.ok(
      tensorInfos.some((t) => t.dtype === 6 || t.dtype === 8),
      "some tensors quantised",
    );
    assert.ok((await stat(file)).size < (await stat(join(work, "demo-false-q8_0.gguf"))).size);
    const v = await verifyGguf(source, file, harmful.slice(0, 8), { type: "q8_0", maxNewTokens: 8 });
    assert.ok(v.tokenAgreement > 0.5, JSON.stringify(v));
  });
});

describe("each family's real tokenizer in llama.cpp", () => {
  const shapes: Record<string, ReferenceArch> = {
    llama3: "llama",
    qwen3: "qwen3",
    gemma2: "gemma2",
    gemma3: "gemma3_text",
    phi3: "phi3",
    phi4mini: "phi3",
  };
  for (const family of TOKENIZER_FAMILIES) {
    it(family, async () => {
      const tokenizer = await tokenizerDir(family);
      const tokenizerJson = JSON.parse(await readFile(join(tokenizer, "tokenizer.json"), "utf8"));
      const ids = [
        ...Object.values(tokenizerJson.model.vocab as Record<string, number>),
        ...tokenizerJson.added_tokens.map((t: { id: number }) => t.id),
      ];
      const vocabSize = ids.reduce((a, b) => Math.max(a, b), 0) + 1;
      const fixture = JSON.parse(await readFile(join(modelDir(shapes[family]), "config.json"), "utf8"));
      const dir = join(work, `family-${family}`);
      await writeRandomCheckpoint(
        dir,
        { ...fixture, vocab_size: vocabSize, bos_token_id: 0, eos_token_id: 1, pad_token_id: 0 },
        { seed: 3 },
      );
      await cp(tokenizer, dir, { recursive: true });
      const file = join(work, `family-${family}.gguf`);
      await exportGguf(dir, file, { type: "q8_0" });
      const engine = await loadModel(dir);
      const model = await loadGguf(file);
      try {
        for (const text of [
          "Write a poem about the sea.",
          "héllo wörld — ünïcode ✓ 日本語",
          "  two  spaces\n\nand\ttabs",
          "don't I'll 12345",
        ]) {
          assert.deepEqual(llamaCppTokenize(model, text), engine.tokenizer.encode(text), `${family}: ${JSON.stringify(text)}`);
        }
        const q = "Write a poem about the sea.";
        const prompt = engine.tokenizer.formatInstruction(q);
        const theirs = await llamaCppChatTokens(model, q);
        assert.deepEqual(theirs, engine.tokenizer.encode(prompt), `${family}: chat template`);
      } finally {
        await model.dispose();
        engine.dispose();
      }
    });
  }
});

describe("bad input fails before anything is written", () => {
  it("an unsupported type, an existing file, a path inside the source, a missing tokenizer, an unknown pre-tokenizer", async () => {
    const out = join(work, "bad.gguf");
    await assert.rejects(
      exportGguf(DEMO_MODEL_DIR, out, { type: "q4_0" as never }),
      /GGUF type "q4_0" is not supported \(written here: f32, f16, bf16, q8_0; by llama.cpp's quantiser: q2_k/,
    );
    await assert.rejects(stat(out), /ENOENT/);
    await writeFile(out, "mine");
    await assert.rejects(exportGguf(DEMO_MODEL_DIR, out), /bad\.gguf exists already; pass --force \(force: true in code\) to replace it/);
    assert.equal(await readFile(out, "utf8"), "mine");
    await assert.rejects(exportGguf(DEMO_MODEL_DIR, join(DEMO_MODEL_DIR, "x.gguf")), /is inside the source folder/);
    await symlink(DEMO_MODEL_DIR, join(work, "linked-demo"));
    await assert.rejects(
      exportGguf(DEMO_MODEL_DIR, join(work, "linked-demo", "x.gguf")),
      /is inside the source folder .*\(through a link: /,
    );
    await assert.rejects(exportGguf(DEMO_MODEL_DIR, work), /is a folder; give a file name such as model\.gguf/);
    const noTokenizer = join(work, "no-tokenizer");
    await cp(modelDir("llama"), noTokenizer, { recursive: true });
    await assert.rejects(exportGguf(noTokenizer, join(work, "nt.gguf")), /tokenizer\.json: missing; a GGUF file carries its tokenizer/);
    await assert.rejects(stat(join(work, "nt.gguf")), /ENOENT/);
    assert.throws(
      () =>
        byteLevelPreTokenizer(
          {
            type: "Sequence",
            pretokenizers: [
              { type: "Split", pattern: { Regex: "\\w+" }, behavior: "Isolated", invert: false },
              { type: "ByteLevel", use_regex: false },
            ],
          },
          "t.json",
        ),
      /t\.json: llama\.cpp has no pre-tokenizer that splits by "\\\\w\+"/,
    );
    assert.equal(byteLevelPreTokenizer({ type: "ByteLevel", use_regex: true }, "t.json"), "gpt-2");
    // A known regex kept by an inverted Removed (OpenAI-derived files) is the same split; a plain Removed drops the words.
    const llamaBpe =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| " +
      "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    const split = (behavior: string, invert: boolean) => ({
      type: "Sequence",
      pretokenizers: [
        { type: "Split", pattern: { Regex: llamaBpe }, behavior, invert },
        { type: "ByteLevel", use_regex: false },
      ],
    });
    assert.equal(byteLevelPreTokenizer(split("Isolated", false), "t.json"), "llama-bpe");
    assert.equal(byteLevelPreTokenizer(split("Removed", true), "t.json"), "llama-bpe");
    assert.throws(
      () => byteLevelPreTokenizer(split("Removed", false), "t.json"),
      /t\.json: llama\.cpp has no pre-tokenizer that splits by/,
    );
  });
  it(
    "an added token beyond the embedding is left out and said, as llama.cpp's converter does; a vocabulary token beyond it is " +
      "an error",
    async () => {
      // Gemma 3's tokenizer adds <image_soft_token> at 262144 beside a text model of 262144 rows.
      const dir = join(work, "added-beyond");
      await mkdir(dir);
      const json = JSON.parse(await readFile(join(DEMO_MODEL_DIR, "tokenizer.json"), "utf8"));
      const rows = Math.max(...(Object.values(json.model.vocab) as number[]), ...json.added_tokens.map((t: { id: number }) => t.id)) + 1;
      json.added_tokens.push({
        id: rows,
        content: "<image_soft_token>",
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: true,
      });
      await writeFile(join(dir, "tokenizer.json"), JSON.stringify(json));
      await cp(join(DEMO_MODEL_DIR, "tokenizer_config.json"), join(dir, "tokenizer_config.json"));
      const { metadata, notes } = await ggufVocab(dir, rows, {});
      assert.equal((metadata.get("tokenizer.ggml.tokens") as { values: readonly string[] }).values.length, rows);
      assert.ok(
        notes.includes(
          `added token "<image_soft_token>" (id ${rows}) left out: outside the model's ${rows} embedding rows, as llama.cpp's ` +
            `converter does`,
        ),
        notes.join("; "),
      );
      await assert.rejects(
        ggufVocab(dir, rows - 1, {}),
        new RegExp(`added-beyond/tokenizer\\.json: token .* has id ${rows - 1}, outside the model's ${rows - 1} embedding rows`),
      );
    },
  );
  it("two vocabulary tokens sharing one id are refused, naming both, instead of leaving an id as [PADn] (#23, low)", async () => {
    const dir = join(work, "shared-id");
    await mkdir(dir);
    const json = JSON.parse(await readFile(join(DEMO_MODEL_DIR, "tokenizer.json"), "utf8"));
    const vocab = json.model.vocab as Record<string, number>;
    const [first, second] = Object.keys(vocab).filter((t) => /^[a-z]{3,}$/.test(t));
    const freed = vocab[second];
    vocab[second] = vocab[first];
    await writeFile(join(dir, "tokenizer.json"), JSON.stringify(json));
    await cp(join(DEMO_MODEL_DIR, "tokenizer_config.json"), join(dir, "tokenizer_config.json"));
    const rows = Math.max(freed, ...(Object.values(vocab) as number[]), ...json.added_tokens.map((t: { id: number }) => t.id)) + 1;
    await assert.rejects(
      ggufVocab(dir, rows, {}),
      new RegExp(
        `shared-id/tokenizer\\.json: tokens "(${first}|${second})" and "(${first}|${second})" share id ${vocab[first]} in model\\.vocab`,
      ),
    );
  });
  it("a direction of the wrong width is named", async () => {
    await assert.rejects(exportGguf(DEMO_MODEL_DIR, join(work, "w.gguf"), { unit: unitVector([1, 0, 0]) }), /3.*128|128.*3/);
    await assert.rejects(stat(join(work, "w.gguf")), /ENOENT/);
  });
});
