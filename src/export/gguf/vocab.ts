// A model folder's tokenizer as GGUF metadata (`tokenizer.ggml.*` and `tokenizer.chat_template`), so that
// llama.cpp tokenizes and chats without extra files. Two kinds of Hugging Face tokenizer.json map onto
// llama.cpp's tokenizers:
// - byte-level BPE (GPT-2, Llama 3, Qwen, the demo model): llama.cpp's "gpt2" model with the merges and a
//   pre-tokenizer named after the regex tokenizer.json splits with (read from the file, not guessed
//   from the model's name);
// - SentencePiece-style BPE with byte fallback (Llama 2, Phi-3, Gemma): llama.cpp's "llama" model, whose
//   merge order comes from token scores: each merged token scores minus the rank of its first merge.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { exists } from "../../files.ts";
import { ChatTokenizer } from "../../tokenizer.ts";
import { bool, str, u32, type GgufValue } from "./write.ts";

/** llama.cpp's token types. */
const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

/**
 * Pre-tokenizer regexes of tokenizer.json (the `Split` before a non-regex `ByteLevel`) that llama.cpp
 * implements, by the name llama.cpp knows them under (src/llama-vocab.cpp keeps each original regex beside
 * its adaptation).
 */
const SPLIT_REGEX_PRE: Record<string, string> = {
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+":
    "llama-bpe",
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+":
    "qwen2",
  ["[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m" +
  "|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t" +
  "|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"]: "gpt-4o",
};

export class GgufVocabError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "GgufVocabError";
  }
}

interface TokenizerJson {
  model?: {
    type?: string;
    vocab?: Record<string, number>;
    merges?: (string | [string, string])[];
    byte_fallback?: boolean;
    unk_token?: string | null;
  };
  added_tokens?: { id: number; content: string; special?: boolean }[];
  pre_tokenizer?: Record<string, unknown> | null;
  normalizer?: Record<string, unknown> | null;
  post_processor?: Record<string, unknown> | null;
}

/** Which of llama.cpp's pre-tokenizers splits text as tokenizer.json's byte-level pre-tokenizer does. */
export function byteLevelPreTokenizer(pre: Record<string, unknown> | null | undefined, file: string): string {
  if (pre?.type === "ByteLevel" && pre.use_regex !== false) return "gpt-2";
  const steps = pre?.type === "Sequence" ? (pre.pretokenizers as Record<string, unknown>[]) : undefined;
  if (steps?.length === 2 && steps[0].type === "Split" && steps[1].type === "ByteLevel" && steps[1].use_regex === false) {
    const split = steps[0] as { pattern?: { Regex?: string }; behavior?: string; invert?: boolean };
    const regex = split.pattern?.Regex;
    // Each known regex matches every character, so keeping the matches as pieces (Isolated) and keeping
    // only the matches (an inverted Removed, as OpenAI-derived files write it) split text alike.
    const keepsMatches = (split.behavior === "Isolated" && !split.invert) || (split.behavior === "Removed" && split.invert === true);
    if (regex !== undefined && keepsMatches && SPLIT_REGEX_PRE[regex]) return SPLIT_REGEX_PRE[regex];
    throw new GgufVocabError(
      `${file}: llama.cpp has no pre-tokenizer that splits by ${JSON.stringify(regex ?? split.pattern)} (known: GPT-2's ` +
        `ByteLevel regex, ${Object.values(SPLIT_REGEX_PRE).join(", ")}); the GGUF would tokenize differently`,
    );
  }
  throw new GgufVocabError(
    `${file}: pre_tokenizer ${JSON.stringify(pre)} has no llama.cpp equivalent (byte-level BPE needs ByteLevel, or Split by a ` +
      `known regex then ByteLevel)`,
  );
}

/** Added tokens some models leave unmarked that are markers all the same (as llama.cpp's converter decides). */
const looksSpecial = (t: string) => /^<\|.*\|>$/.test(t) || /^<unused.*>$/.test(t) || ["<pad>", "<mask>", "<2mass>", "[@BOS@]"].includes(t);

const mergePair = (m: string | [string, string]): [string, string] => {
  if (Array.isArray(m)) return m;
  const space = m.indexOf(" ", 1);
  return [m.slice(0, space), m.slice(space + 1)];
};

/**
 * Whether the tokenizer adds `token` in front of a single sequence (tokenizer.json's post-processor, or tokenizer_config's add_bos_token).
 */
function addsBos(json: TokenizerJson, config: Record<string, unknown>, bos: string | undefined): boolean {
  if (typeof config.add_bos_token === "boolean") return config.add_bos_token;
  const post = json.post_processor as
    { type?: string; single?: { SpecialToken?: { id: string } }[]; processors?: unknown[] } | null | undefined;
  const processors = post?.type === "Sequence" ? (post.processors as (typeof post)[]) : [post];
  return processors.some((p) => p?.type === "TemplateProcessing" && p.single?.[0]?.SpecialToken?.id === bos && bos !== undefined);
}

/**
 * GGUF tokenizer metadata for the model folder `dir`, with `vocabSize` token slots (the embedding's rows;
 * ids the tokenizer leaves unused are written as unused `[PADn]` tokens, as llama.cpp's converter does).
 */
export async function ggufVocab(
  dir: string,
  vocabSize: number,
  ids: { bos?: number; eos?: number; pad?: number },
): Promise<{ metadata: Map<string, GgufValue>; notes: string[] }> {
  const out = new Map<string, GgufValue>();
  const notes: string[] = [];
  const file = join(dir, "tokenizer.json");
  if (!(await exists(file)))
    throw new GgufVocabError(`${file}: missing; a GGUF file carries its tokenizer (llama.cpp cannot run a model without one)`);
  const chat = await ChatTokenizer.load(dir);
  const json = JSON.parse(await readFile(file, "utf8")) as TokenizerJson;
  const model = json.model;
  if (model?.type !== "BPE" || !model.vocab || !model.merges)
    throw new GgufVocabError(
      `${file}: GGUF export supports BPE tokenizers (byte-level, or SentencePiece-style with byte fallback); this one is ` +
        `${model?.type ?? "of no type"}`,
    );
  const added = new Map((json.added_tokens ?? []).map((t) => [t.id, t]));
  const tokens: string[] = new Array(vocabSize);
  const types = new Int32Array(vocabSize);
  for (const [text, id] of Object.entries(model.vocab)) {
    if (!(Number.isInteger(id) && id >= 0 && id < vocabSize))
      throw new GgufVocabError(`${file}: token ${JSON.stringify(text)} has id ${id}, outside the model's ${vocabSize} embedding rows`);
    if (tokens[id] !== undefined)
      throw new GgufVocabError(
        `${file}: tokens ${JSON.stringify(tokens[id])} and ${JSON.stringify(text)} share id ${id} in model.vocab; each id must ` +
          `name one token (a GGUF vocabulary is a list by id)`,
      );
    tokens[id] = text;
  }
  for (const [id, t] of added) {
    if (id >= vocabSize) {
      // As llama.cpp's converter does: an added token beyond the embedding (Gemma 3's <image_soft_token> at
      // 262144 beside a 262144-row text model) cannot be produced by the model; it is left out, and said.
      added.delete(id);
      notes.push(
        `added token ${JSON.stringify(t.content)} (id ${id}) left out: outside the model's ${vocabSize} embedding rows, as ` +
          `llama.cpp's converter does`,
      );
      continue;
    }
    tokens[id] = t.content;
  }
  const spm = model.byte_fallback === true;
  for (let id = 0; id < vocabSize; id++) {
    if (tokens[id] === undefined) {
      tokens[id] = `[PAD${id}]`;
      types[id] = TOKEN_TYPE.unused;
    } else if (added.has(id)) types[id] = added.get(id)!.special || looksSpecial(tokens[id]) ? TOKEN_TYPE.control : TOKEN_TYPE.userDefined;
    else if (spm && /^<0x[0-9A-F]{2}>$/.test(tokens[id])) types[id] = TOKEN_TYPE.byte;
    else if (spm && tokens[id] === model.unk_token) types[id] = TOKEN_TYPE.unknown;
    else types[id] = TOKEN_TYPE.normal;
  }
  if (spm) {
    // Scores give SentencePiece's merge order: a merged token scores minus the rank of the first merge making it.
    const scores = new Float32Array(vocabSize).fill(0);
    const firstRank = new Map<string, number>();
    model.merges.forEach((m, rank) => {
      const [a, b] = mergePair(m);
      if (!firstRank.has(a + b)) firstRank.set(a + b, rank);
    });
    for (let id = 0; id < vocabSize; id++) {
      if (types[id] !== TOKEN_TYPE.normal) continue;
      const rank = firstRank.get(tokens[id]);
      scores[id] = rank !== undefined ? -rank : -(model.merges.length + id);
    }
    const prepends = JSON.stringify(json.normalizer ?? {}).includes('"Prepend"');
    out.set("tokenizer.ggml.model", str("llama"));
    out.set("tokenizer.ggml.pre", str("default"));
    out.set("tokenizer.ggml.tokens", { type: "array", of: "string", values: tokens });
    out.set("tokenizer.ggml.scores", { type: "array", of: "f32", values: scores });
    out.set("tokenizer.ggml.token_type", { type: "array", of: "i32", values: types });
    out.set("tokenizer.ggml.add_space_prefix", bool(prepends));
  } else {
    out.set("tokenizer.ggml.model", str("gpt2"));
    out.set("tokenizer.ggml.pre", str(byteLevelPreTokenizer(json.pre_tokenizer, file)));
    out.set("tokenizer.ggml.tokens", { type: "array", of: "string", values: tokens });
    out.set("tokenizer.ggml.token_type", { type: "array", of: "i32", values: types });
    out.set("tokenizer.ggml.merges", { type: "array", of: "string", values: model.merges.map((m) => mergePair(m).join(" ")) });
  }
  const idOf = (name: "bos_token" | "eos_token" | "pad_token" | "unk_token") => {
    const text = chat.specialToken(name);
    return text === undefined ? undefined : chat.tokenId(text);
  };
  const bos = idOf("bos_token") ?? ids.bos;
  const eos = idOf("eos_token") ?? ids.eos;
  const pad = idOf("pad_token") ?? ids.pad;
  const unk = idOf("unk_token");
  if (bos !== undefined) out.set("tokenizer.ggml.bos_token_id", u32(bos));
  if (eos !== undefined) out.set("tokenizer.ggml.eos_token_id", u32(eos));
  if (pad !== undefined) out.set("tokenizer.ggml.padding_token_id", u32(pad));
  if (unk !== undefined) out.set("tokenizer.ggml.unknown_token_id", u32(unk));
  out.set("tokenizer.ggml.add_bos_token", bool(addsBos(json, chat.config, chat.specialToken("bos_token"))));
  out.set("tokenizer.ggml.add_eos_token", bool(chat.config.add_eos_token === true));
  if (chat.chatTemplate !== undefined) out.set("tokenizer.chat_template", str(chat.chatTemplate));
  return { metadata: out, notes };
}
