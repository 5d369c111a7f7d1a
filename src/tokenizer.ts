// Tokenizer (tokenizer.json, via @huggingface/tokenizers) and chat template (tokenizer_config.json,
// via @huggingface/jinja), with batch tokenisation that pads on the left as generation needs.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Template } from "@huggingface/jinja";
import { Tokenizer } from "@huggingface/tokenizers";

export class TokenizerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TokenizerError";
  }
}

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export interface Batch {
  /** [batch][pos], left-padded with the pad id. */
  inputIds: number[][];
  /** [batch][pos], 1 on real tokens, 0 on padding. */
  attentionMask: number[][];
}

type SpecialToken = string | { content: string } | null | undefined;
const tokenText = (t: SpecialToken) => (t == null ? undefined : typeof t === "string" ? t : t.content);

export class ChatTokenizer {
  private readonly template?: Template;

  constructor(
    readonly tokenizer: Tokenizer,
    readonly config: Record<string, unknown>,
    /** Where it was loaded from, for error messages. */
    readonly source: string,
  ) {
    const chatTemplate = config.chat_template;
    if (typeof chatTemplate === "string") this.template = new Template(chatTemplate);
    else if (Array.isArray(chatTemplate)) {
      const main = chatTemplate.find((t: { name?: string }) => t.name === "default") ?? chatTemplate[0];
      if (main?.template) this.template = new Template(main.template);
    }
  }

  static async load(dir: string): Promise<ChatTokenizer> {
    const read = async (file: string) => {
      const path = join(dir, file);
      let text: string;
      try {
        text = await readFile(path, "utf8");
      } catch (error) {
        throw new TokenizerError(`${path}: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); a model folder needs tokenizer.json and tokenizer_config.json`);
      }
      try {
        return JSON.parse(text) as Record<string, unknown>;
      } catch (error) {
        throw new TokenizerError(`${path}: not valid JSON (${(error as Error).message})`);
      }
    };
    const tokenizerJson = await read("tokenizer.json");
    const tokenizerConfig = await read("tokenizer_config.json");
    let tokenizer: Tokenizer;
    try {
      tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig);
    } catch (error) {
      throw new TokenizerError(`${join(dir, "tokenizer.json")}: cannot build the tokenizer (${(error as Error).message})`);
    }
    return new ChatTokenizer(tokenizer, tokenizerConfig, dir);
  }

  get hasChatTemplate(): boolean {
    return this.template !== undefined;
  }

  specialToken(name: "bos_token" | "eos_token" | "pad_token" | "unk_token"): string | undefined {
    return tokenText(this.config[name] as SpecialToken);
  }

  tokenId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token);
  }

  /** The pad id: tokenizer_config's pad_token, else the fallback (usually config.json's pad or eos). */
  padId(fallback?: number): number {
    const pad = this.specialToken("pad_token");
    const id = pad === undefined ? undefined : this.tokenId(pad);
    const chosen = id ?? fallback;
    if (chosen === undefined) throw new TokenizerError(`${this.source}: no pad token in tokenizer_config.json and no fallback id`);
    return chosen;
  }

  /**
   * Render the chat template with a generation prompt, as
   * `tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)` does.
   */
  applyChatTemplate(messages: ChatMessage[], options: { addGenerationPrompt?: boolean } = {}): string {
    if (!this.template) throw new TokenizerError(`${this.source}/tokenizer_config.json: has no chat_template`);
    return this.template.render({
      messages,
      add_generation_prompt: options.addGenerationPrompt ?? true,
      bos_token: this.specialToken("bos_token") ?? "",
      eos_token: this.specialToken("eos_token") ?? "",
      pad_token: this.specialToken("pad_token") ?? "",
      unk_token: this.specialToken("unk_token") ?? "",
    });
  }

  /** One user instruction in the chat format, ready for the assistant's reply. */
  formatInstruction(instruction: string, system?: string): string {
    const messages: ChatMessage[] = system ? [{ role: "system", content: system }] : [];
    messages.push({ role: "user", content: instruction });
    return this.applyChatTemplate(messages);
  }

  /** Token ids; special tokens are those the text spells out (chat-templated text already has them). */
  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: options.addSpecialTokens ?? false }).ids;
  }

  decode(ids: number[], options: { skipSpecialTokens?: boolean } = {}): string {
    return this.tokenizer.decode(ids, { skip_special_tokens: options.skipSpecialTokens ?? true });
  }

  /** Tokenise several texts and pad them on the left to the longest. */
  encodeBatch(texts: string[], padId: number, options: { addSpecialTokens?: boolean } = {}): Batch {
    return padLeft(texts.map((t) => this.encode(t, options)), padId);
  }
}

/** Pad token sequences on the left to the longest, with an attention mask. */
export function padLeft(sequences: number[][], padId: number): Batch {
  if (sequences.length === 0) throw new Error("padLeft: no sequences");
  const length = Math.max(...sequences.map((s) => s.length));
  if (length === 0) throw new Error("padLeft: every sequence is empty");
  const inputIds: number[][] = [];
  const attentionMask: number[][] = [];
  for (const s of sequences) {
    const pad = length - s.length;
    inputIds.push([...new Array(pad).fill(padId), ...s]);
    attentionMask.push([...new Array(pad).fill(0), ...new Array(s.length).fill(1)]);
  }
  return { inputIds, attentionMask };
}
