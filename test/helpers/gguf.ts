// Helpers for the GGUF tests: a tokenizer for the reference checkpoints (which have none), and reading a
// tensor's raw bytes from a GGUF file through @huggingface/gguf's parser.
import { cp, mkdir, open, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gguf } from "@huggingface/gguf";

/**
 * A copy of a reference checkpoint with a tokenizer of exactly its vocabulary: GPT-2's 256 byte symbols and
 * added special tokens for the remaining ids (a GGUF file carries a tokenizer; the fixtures have none).
 */
export async function withByteTokenizer(from: string, to: string, vocabSize: number): Promise<string> {
  await mkdir(to, { recursive: true });
  await cp(from, to, { recursive: true });
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const vocab: Record<string, number> = {};
  let shifted = 0;
  for (let b = 0; b < 256; b++) vocab[String.fromCodePoint(printable(b) ? b : 256 + shifted++)] = b;
  // The first added tokens are those llama.cpp's Phi-3 handling looks up.
  const names = ["<unk>", "<s>", "</s>", "<|endoftext|>"];
  const added = Array.from({ length: vocabSize - 256 }, (_, i) => ({
    id: 256 + i,
    content: names[i] ?? `<|t${256 + i}|>`,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  await writeFile(
    join(to, "tokenizer.json"),
    JSON.stringify({
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: added,
      normalizer: null,
      pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
      post_processor: null,
      decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: "BPE",
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab,
        merges: [],
      },
    }),
  );
  await writeFile(join(to, "tokenizer_config.json"), JSON.stringify({ bos_token: "<s>", eos_token: "</s>", pad_token: "<unk>" }));
  return to;
}

/** A GGUF file's metadata (by key) and tensor list as @huggingface/gguf reads them. */
export async function readGguf(file: string) {
  const parsed = await gguf(file, { allowLocalFile: true });
  return { ...parsed, metadata: parsed.metadata as unknown as Record<string, unknown> };
}

/** The raw bytes of tensor `name` (its size in `bytes`) in a GGUF file. */
export async function ggufTensorBytes(file: string, name: string, bytes: number): Promise<Buffer> {
  const { tensorInfos, tensorDataOffset } = await readGguf(file);
  const info = tensorInfos.find((t) => t.name === name);
  if (!info) throw new Error(`${file}: no tensor ${name}`);
  const handle = await open(file);
  try {
    const out = Buffer.alloc(bytes);
    await handle.read(out, 0, bytes, Number(tensorDataOffset + info.offset));
    return out;
  } finally {
    await handle.close();
  }
}
