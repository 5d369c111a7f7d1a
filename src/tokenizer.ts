// Tokenizer (tokenizer.json, via @huggingface/tokenizers) and chat template (tokenizer_config.json,
// via @huggingface/jinja), with batch tokenisation that pads on the left as generation needs.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { exists } from "./files.ts";
import { ChatTemplateError, describeConversation, parseChatTemplate, renderChatTemplate } from "./chat-template.ts";
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
  private readonly templateSource?: string;
  /** The file the chat template came from, for error messages. */
  readonly templateFile: string;

  constructor(
    readonly tokenizer: Tokenizer,
    readonly config: Record<string, unknown>,
    /** Where it was loaded from, for error messages. */
    readonly source: string,
    /** A chat template from chat_template.jinja, used when tokenizer_config.json has none. */
    separateTemplate?: { text: string; file: string },
  ) {
    const chatTemplate = config.chat_template;
    let text: string | undefined;
    this.templateFile = join(source, "tokenizer_config.json");
    if (typeof chatTemplate === "string") text = chatTemplate;
    else if (Array.isArray(chatTemplate)) {
      const main = chatTemplate.find((t: { name?: string }) => t.name === "default") ?? chatTemplate[0];
      if (typeof main?.template === "string") text = main.template;
    } else if (separateTemplate) {
      text = separateTemplate.text;
      this.templateFile = separateTemplate.file;
    }
    if (text !== undefined) {
      const source = text;
      asTokenizerError(() => parseChatTemplate(source, this.templateFile));
      this.templateSource = source;
    }
  }

  static async load(dir: string): Promise<ChatTokenizer> {
    const read = async (file: string) => {
      const path = join(dir, file);
      let text: string;
      try {
        text = await readFile(path, "utf8");
      } catch (error) {
        throw new TokenizerError(
          `${path}: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); a model folder ` +
            `needs tokenizer.json and tokenizer_config.json`,
        );
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
    // Newer checkpoints keep the chat template in a file of its own.
    const jinja = join(dir, "chat_template.jinja");
    const separate =
      tokenizerConfig.chat_template === undefined && (await exists(jinja))
        ? { text: await readFile(jinja, "utf8"), file: jinja }
        : undefined;
    const chat = new ChatTokenizer(tokenizer, tokenizerConfig, dir, separate);
    // Render a one-line conversation now, so that a template that loops or fills memory on every input fails
    // at load; one that does so only on some conversations fails on those (every render is bounded). A template
    // may refuse this conversation on purpose (raise_exception): that is its right, not a hazard.
    if (chat.templateSource !== undefined)
      try {
        chat.render([{ role: "user", content: "Hello" }], true, "a one-line conversation");
      } catch (error) {
        if (!(error instanceof ChatTemplateError)) throw error;
        if (!error.refused) throw new TokenizerError(error.message);
      }
    return chat;
  }

  private templateVariables(): Record<string, string> {
    return {
      bos_token: this.specialToken("bos_token") ?? "",
      eos_token: this.specialToken("eos_token") ?? "",
      pad_token: this.specialToken("pad_token") ?? "",
      unk_token: this.specialToken("unk_token") ?? "",
    };
  }

  /** The chat template's text, as the model folder gives it. */
  get chatTemplate(): string | undefined {
    return this.templateSource;
  }

  get hasChatTemplate(): boolean {
    return this.templateSource !== undefined;
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
    return this.render(messages, options.addGenerationPrompt ?? true, describeConversation(messages));
  }

  private render(messages: ChatMessage[], addGenerationPrompt: boolean, what: string): string {
    if (this.templateSource === undefined)
      throw new TokenizerError(`${this.source}/tokenizer_config.json: has no chat_template (nor is there a chat_template.jinja)`);
    const context = { messages, add_generation_prompt: addGenerationPrompt, ...this.templateVariables() };
    return renderChatTemplate(this.templateSource, context, this.templateFile, what);
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
    if (ids.length === 0) return ""; // an answer that ends at once is an empty answer, not an error
    return this.tokenizer.decode(ids, { skip_special_tokens: options.skipSpecialTokens ?? true });
  }

  /** Tokenise several texts and pad them on the left to the longest. */
  encodeBatch(texts: string[], padId: number, options: { addSpecialTokens?: boolean } = {}): Batch {
    return padLeft(
      texts.map((t) => this.encode(t, options)),
      padId,
    );
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

/** Run `f`, reporting a chat-template error as a TokenizerError (a model loads without a usable tokenizer). */
function asTokenizerError(f: () => void): void {
  try {
    f();
  } catch (error) {
    throw error instanceof ChatTemplateError ? new TokenizerError(error.message) : error;
  }
}
