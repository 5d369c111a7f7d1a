// llama.cpp itself, through node-llama-cpp's prebuilt CPU binaries, as the judge of a GGUF export: loading
// the file, tokenizing, rendering its chat template, greedy continuations and next-token log-probabilities.
// node-llama-cpp is a development dependency (the tests and `--verify` use it); it is imported on first use.
// Contexts use a float32 KV cache and no flash attention: llama.cpp's defaults (float16 cache, flash
// attention through float16) move log-probabilities by about 1e-2, which would hide a real difference.
import { availableParallelism } from "node:os";
import { describeConversation, renderChatTemplate } from "../../chat-template.ts";
import type { Llama, LlamaModel } from "node-llama-cpp";

let llama: Promise<Llama> | undefined;

/** One llama.cpp instance per process, CPU only, never building from source. */
export async function llamaCpp(): Promise<Llama> {
  llama ??= (async () => {
    let module: typeof import("node-llama-cpp");
    try {
      module = await import("node-llama-cpp");
    } catch (error) {
      throw new Error(
        `checking a GGUF file with llama.cpp needs the node-llama-cpp package (npm install node-llama-cpp@3.21.1): ` +
          `${(error as Error).message}`,
      );
    }
    return module.getLlama({ gpu: false, build: "never", logLevel: module.LlamaLogLevel.error, progressLogs: false });
  })();
  return llama;
}

export async function loadGguf(file: string): Promise<LlamaModel> {
  return (await llamaCpp()).loadModel({ modelPath: file });
}

/**
 * Threads for llama.cpp: one core is left to Node. (With as many threads as cores, llama.cpp's spinning
 * workers compete with Node's: on 2 cores, 16 greedy tokens of the demo model took 10 s instead of 35 ms.)
 */
const THREADS = Math.max(1, availableParallelism() - 1);

const contextOptions = (contextSize: number) =>
  ({
    contextSize,
    sequences: 1,
    threads: THREADS,
    experimentalKvCacheKeyType: "F32",
    experimentalKvCacheValueType: "F32",
    flashAttention: false,
  }) as const;

/**
 * llama.cpp's greedy continuation of `tokens` (ids, no template applied): at most `n` tokens, stopping before an end-of-generation token.
 */
export async function llamaCppGreedy(model: LlamaModel, tokens: readonly number[], n: number, contextSize = 256): Promise<number[]> {
  const context = await model.createContext(contextOptions(contextSize));
  try {
    const out: number[] = [];
    if (n <= 0) return out;
    for await (const token of context.getSequence().evaluate(tokens as never, { temperature: 0 })) {
      if (model.isEogToken(token)) break;
      out.push(token as number);
      if (out.length >= n) break;
    }
    return out;
  } finally {
    await context.dispose();
  }
}

/**
 * llama.cpp's log-probability of every token as the next one after `tokens`. For Phi-3's longrope, llama.cpp
 * uses the long factors when the context (rounded up to 256 tokens) exceeds original_max_position_embeddings.
 */
export async function llamaCppLogProbs(
  model: LlamaModel,
  tokens: readonly number[],
  vocabSize: number,
  contextSize = 256,
): Promise<Float64Array> {
  const context = await model.createContext(contextOptions(contextSize));
  try {
    const last = tokens.length - 1;
    const input = tokens.map((t, i) => (i === last ? ([t, { generateNext: { probabilities: true } }] as const) : t));
    const outputs = await context.getSequence().controlledEvaluate(input as never);
    const probabilities = (outputs[last] as { next: { probabilities: Map<number, number> } }).next.probabilities;
    return Float64Array.from({ length: vocabSize }, (_, t) => Math.log(probabilities.get(t) ?? 0));
  } finally {
    await context.dispose();
  }
}

/** The text of token ids, as llama.cpp decodes them. */
export function llamaCppDetokenize(model: LlamaModel, tokens: readonly number[]): string {
  return model.detokenize(tokens as never);
}

/** Token ids llama.cpp gives `text`, special tokens in the text parsed as such. */
export function llamaCppTokenize(model: LlamaModel, text: string): number[] {
  return Array.from(model.tokenize(text, true) as readonly number[]);
}

/**
 * The token ids of a one-message conversation, ready for the assistant's answer, as a GGUF consumer with Jinja
 * support (llama.cpp's server with --jinja, LM Studio) makes them: the chat template stored in the file,
 * rendered with `add_generation_prompt` and llama.cpp's own bos/eos token texts, then tokenized by llama.cpp.
 */
export async function llamaCppChatTokens(model: LlamaModel, user: string): Promise<number[]> {
  const template = model.fileInfo.metadata.tokenizer?.chat_template;
  if (typeof template !== "string") throw new Error(`${model.filename ?? "the GGUF file"} has no tokenizer.chat_template`);
  const messages = [{ role: "user", content: user }];
  const context = {
    messages,
    add_generation_prompt: true,
    bos_token: model.tokens.bosString ?? "",
    eos_token: model.tokens.eosString ?? "",
  };
  const text = renderChatTemplate(
    template,
    context,
    `${model.filename ?? "the GGUF file"}: tokenizer.chat_template`,
    describeConversation(messages),
  );
  return llamaCppTokenize(model, text);
}
