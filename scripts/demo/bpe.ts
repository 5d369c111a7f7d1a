// A small byte-level BPE trainer that writes a Hugging Face tokenizer.json (GPT-2 style:
// ByteLevel pre-tokenizer and decoder), so the demo model's tokenizer loads like any real one.

/** GPT-2's reversible map from bytes to printable unicode characters. */
export function bytesToUnicode(): string[] {
  const printable: number[] = [];
  for (let b = 33; b <= 126; b++) printable.push(b);
  for (let b = 161; b <= 172; b++) printable.push(b);
  for (let b = 174; b <= 255; b++) printable.push(b);
  const table: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) table[b] = printable.includes(b) ? String.fromCharCode(b) : String.fromCharCode(256 + extra++);
  return table;
}

/** GPT-2's pre-tokenisation pattern (the one the ByteLevel pre-tokenizer uses). */
const PRETOKENIZE = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

export interface TrainedBpe {
  vocab: Record<string, number>;
  merges: [string, string][];
}

/** Learn merges until the vocabulary (256 bytes + merges) reaches `vocabSize` or no pair repeats. */
export function trainBpe(texts: readonly string[], vocabSize: number, reservedIds: number): TrainedBpe {
  const byteChar = bytesToUnicode();
  const encoder = new TextEncoder();
  const wordCounts = new Map<string, number>();
  for (const text of texts) {
    for (const piece of text.match(PRETOKENIZE) ?? []) {
      const mapped = [...encoder.encode(piece)].map((b) => byteChar[b]).join("");
      wordCounts.set(mapped, (wordCounts.get(mapped) ?? 0) + 1);
    }
  }
  const words = [...wordCounts].map(([w, count]) => ({ symbols: [...w], count }));
  const vocab: Record<string, number> = {};
  let next = reservedIds;
  for (const c of [...byteChar].sort()) vocab[c] = next++;
  const merges: [string, string][] = [];
  while (next < vocabSize) {
    const pairs = new Map<string, number>();
    for (const w of words) {
      for (let i = 0; i < w.symbols.length - 1; i++) {
        const key = `${w.symbols[i]}\u0000${w.symbols[i + 1]}`;
        pairs.set(key, (pairs.get(key) ?? 0) + w.count);
      }
    }
    let best = "";
    let bestCount = 1;
    for (const [k, c] of pairs) if (c > bestCount || (c === bestCount && best !== "" && k < best)) [best, bestCount] = [k, c];
    if (best === "") break; // no pair occurs twice
    const [a, b] = best.split("\u0000");
    merges.push([a, b]);
    vocab[a + b] = next++;
    for (const w of words) {
      const merged: string[] = [];
      for (let i = 0; i < w.symbols.length; i++) {
        if (i < w.symbols.length - 1 && w.symbols[i] === a && w.symbols[i + 1] === b) {
          merged.push(a + b);
          i++;
        } else merged.push(w.symbols[i]);
      }
      w.symbols = merged;
    }
  }
  return { vocab, merges };
}

/** A tokenizer.json with `specialTokens` at ids 0.. and the trained BPE after them. */
export function tokenizerJson(bpe: TrainedBpe, specialTokens: readonly string[]): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  specialTokens.forEach((t, i) => (vocab[t] = i));
  Object.assign(vocab, bpe.vocab);
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: specialTokens.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
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
      merges: bpe.merges.map(([a, b]) => [a, b]),
    },
  };
}
