// Preference data for healing: files of {prompt, chosen, rejected}, either as strings or as chat-message
// lists (the form of mlabonne/orpo-dpo-mix-40k: `chosen` and `rejected` are whole conversations that end
// with the two competing assistant turns), from local files or a Hub dataset `org/name:split`; rendered with
// the model's chat template into token ids. Also: the demo's own pairs, and the Axolotl config the blog used.
import { writeFileAtomic } from "../files.ts";
import { existsSync } from "node:fs";
import type { HookedModel } from "../hooked-model.ts";
import { datasetSplitFiles, looksLikeRepoId, type HubOptions } from "../hub.ts";
import { DatasetError, readRows, checkLength } from "../data/instructions.ts";
import { generateCompletions, isRefusal } from "../pipeline/evaluate.ts";
import type { ChatMessage, ChatTokenizer } from "../tokenizer.ts";
import type { PreferencePair } from "./dpo.ts";

/** A preference pair as text: the conversation so far, and the two competing assistant answers. */
export interface PreferenceText {
  messages: ChatMessage[];
  chosen: string;
  rejected: string;
}

const isMessages = (v: unknown): v is ChatMessage[] =>
  Array.isArray(v) &&
  v.length > 0 &&
  v.every(
    (m) =>
      typeof m === "object" && m !== null && typeof (m as ChatMessage).role === "string" && typeof (m as ChatMessage).content === "string",
  );

/** One row: strings, or message lists whose last turns are the answers (the lists must agree before them). */
export function preferenceFromRow(row: unknown, where: string): PreferenceText {
  const pair = preferenceFields(row, where);
  for (const [part, text] of [
    ["chosen", pair.chosen],
    ["rejected", pair.rejected],
    ...pair.messages.map((m, i) => [`message ${i + 1}`, m.content]),
  ])
    checkLength(text, `${where}: ${part}`);
  // The same answer on both sides carries no preference: its DPO loss is ln 2 whatever the model does.
  if (pair.chosen === pair.rejected) throw new DatasetError(`${where}: chosen and rejected are the same answer; a pair must differ`);
  return pair;
}

function preferenceFields(row: unknown, where: string): PreferenceText {
  if (typeof row !== "object" || row === null) throw new DatasetError(`${where}: expected an object with prompt, chosen and rejected`);
  const { prompt, chosen, rejected } = row as Record<string, unknown>;
  if (typeof chosen === "string" && typeof rejected === "string") {
    if (typeof prompt === "string") return { messages: [{ role: "user", content: prompt }], chosen, rejected };
    if (isMessages(prompt)) return { messages: prompt, chosen, rejected };
    throw new DatasetError(
      `${where}: prompt must be a string or a list of {role, content} messages, got ${JSON.stringify(prompt)?.slice(0, 80)}`,
    );
  }
  if (isMessages(chosen) && isMessages(rejected)) {
    const [lastChosen, lastRejected] = [chosen[chosen.length - 1], rejected[rejected.length - 1]];
    if (lastChosen.role !== "assistant" || lastRejected.role !== "assistant")
      throw new DatasetError(`${where}: chosen and rejected conversations must end with an assistant turn`);
    const context = chosen.slice(0, -1);
    if (JSON.stringify(context) !== JSON.stringify(rejected.slice(0, -1)))
      throw new DatasetError(`${where}: chosen and rejected conversations differ before their last turn`);
    const messages: ChatMessage[] = context.length > 0 ? context : typeof prompt === "string" ? [{ role: "user", content: prompt }] : [];
    if (messages.length === 0) throw new DatasetError(`${where}: no prompt (neither a prompt field nor turns before the answers)`);
    return { messages, chosen: lastChosen.content, rejected: lastRejected.content };
  }
  throw new DatasetError(`${where}: chosen and rejected must both be strings or both be lists of {role, content} messages`);
}

/** Preference pairs from a local file (.jsonl, .json, .parquet) or a Hub dataset `org/name[:split]`. */
export async function loadPreferences(source: string, options: { limit?: number; hub?: HubOptions } = {}): Promise<PreferenceText[]> {
  const m = /^([\w.-]+\/[\w.-]+)(?::([\w.-]+))?$/.exec(source);
  const files = existsSync(source) || !m || !looksLikeRepoId(m[1]) ? [source] : await datasetSplitFiles(m[1], m[2] ?? "train", options.hub);
  const out: PreferenceText[] = [];
  for (const file of files) {
    const rows = await readRows(file, "preference pairs");
    for (const [i, row] of rows.entries()) {
      out.push(preferenceFromRow(row, `${file}: row ${i + 1}`));
      if (options.limit !== undefined && out.length >= options.limit) return out;
    }
  }
  if (out.length === 0) throw new DatasetError(`${source}: holds no preference pairs`);
  return out;
}

/**
 * Token ids of each pair with the model's chat template: the prompt as the template renders the conversation
 * with a generation prompt, each answer as what the template writes after it for that assistant turn (its
 * end-of-turn marker included), or the answer then the eos token (`eosId`, by default the tokenizer's) where
 * the template does not extend the prompt (templates that rewrite earlier turns).
 */
export function tokenizePreferences(tokenizer: ChatTokenizer, texts: readonly PreferenceText[], eosId?: number): PreferencePair[] {
  const eosText = tokenizer.specialToken("eos_token");
  eosId ??= eosText === undefined ? undefined : tokenizer.tokenId(eosText);
  return texts.map(({ messages, chosen, rejected }, i) => {
    const promptText = tokenizer.applyChatTemplate(messages);
    const answer = (content: string) => {
      const full = tokenizer.applyChatTemplate([...messages, { role: "assistant", content }], { addGenerationPrompt: false });
      if (full.startsWith(promptText) && full.length > promptText.length) return tokenizer.encode(full.slice(promptText.length));
      return [...tokenizer.encode(content), ...(eosId === undefined ? [] : [eosId])];
    };
    const pair = { prompt: tokenizer.encode(promptText), chosen: answer(chosen), rejected: answer(rejected) };
    if (pair.chosen.length === 0 || pair.rejected.length === 0) throw new DatasetError(`pair ${i + 1}: an answer is empty once tokenized`);
    return pair;
  });
}

/** Write pairs as .jsonl in the chat-message-list form (loadable back with loadPreferences). */
export async function savePreferences(path: string, texts: readonly PreferenceText[]): Promise<void> {
  const lines = texts.map(({ messages, chosen, rejected }) =>
    JSON.stringify({
      chosen: [...messages, { role: "assistant", content: chosen }],
      rejected: [...messages, { role: "assistant", content: rejected }],
    }),
  );
  await writeFileAtomic(path, lines.join("\n") + "\n");
}

/**
 * Write pairs in Axolotl's chatml.intel form (Intel/orca_dpo_pairs' fields: system, question, chosen,
 * rejected), the dataset type of the blog's config. Single-turn pairs only (a system message allowed).
 */
export async function saveChatmlIntel(path: string, texts: readonly PreferenceText[]): Promise<void> {
  const lines = texts.map(({ messages, chosen, rejected }, i) => {
    const system = messages.filter((m) => m.role === "system");
    const turns = messages.filter((m) => m.role !== "system");
    if (system.length > 1 || turns.length !== 1 || turns[0].role !== "user")
      throw new DatasetError(
        `pair ${i + 1}: chatml.intel holds one user question (and at most one system message); this pair has ` +
          `${messages.map((m) => m.role).join(", ")}`,
      );
    return JSON.stringify({ system: system[0]?.content ?? "", question: turns[0].content, chosen, rejected });
  });
  await writeFileAtomic(path, lines.join("\n") + "\n");
}

/**
 * The demo's healing pairs, made from its own harmless instructions (no harmful completion is written
 * anywhere): for each instruction, `samples` answers sampled (temperature 1, seeded) from the original model
 * (chosen) and from the abliterated one (rejected), paired in order, kept where they differ. Sampled pairs
 * make DPO's expected gradient, at the start, the gradient of the cross-entropy of the original model's
 * answers under the policy (E over the policy's own samples of the gradient of its log-probability is zero):
 * it pulls the abliterated model's distribution back towards the original's, which is what the harmless KL
 * measures. Pairs whose chosen answer is a refusal are left out.
 */
export async function demoHealingPairs(
  original: HookedModel,
  abliterated: HookedModel,
  instructions: readonly string[],
  options: {
    maxNewTokens?: number;
    seed?: number;
    batchSize?: number;
    samples?: number;
    onProgress?: (done: number, total: number) => void;
  } = {},
): Promise<{ pairs: PreferenceText[]; sampled: number }> {
  const seed = options.seed ?? 0;
  const samples = options.samples ?? 2;
  // Progress in answers sampled, over both models and every draw.
  let sampledSoFar = 0;
  const total = 2 * samples * instructions.length;
  const sample = async (model: HookedModel, draw: number, salt: number) => {
    const answers = await generateCompletions(model, instructions, {
      maxNewTokens: options.maxNewTokens ?? 24,
      batchSize: options.batchSize ?? 16,
      temperature: 1,
      seed: seed * 1000 + draw * 10 + salt,
      onProgress: (done) => options.onProgress?.(sampledSoFar + done, total),
    });
    sampledSoFar += instructions.length;
    return answers;
  };
  const pairs: PreferenceText[] = [];
  for (let draw = 0; draw < samples; draw++) {
    const [good, changed] = [await sample(original, draw, 1), await sample(abliterated, draw, 2)];
    instructions.forEach((instruction, i) => {
      const [chosen, rejected] = [good[i].trim(), changed[i].trim()];
      // A sampled refusal of a harmless request is never preferred: healing must not teach refusing.
      if (chosen !== rejected && chosen.length > 0 && rejected.length > 0 && !isRefusal(chosen))
        pairs.push({ messages: [{ role: "user", content: instruction }], chosen, rejected });
    });
  }
  return { pairs, sampled: samples * instructions.length };
}

/**
 * The blog's Axolotl config (Labonne, "Uncensor any LLM with abliteration": DPO with QLoRA on
 * mlabonne/orpo-dpo-mix-40k-flat), for `baseModel`, with `dataset` instead of the blog's when given (the pairs
 * of `heal`, in chatml.intel form). `padToken` is the model's own pad (or end-of-sequence) token text; the blog
 * sets Llama 3's `<|end_of_text|>`.
 */
export function axolotlConfig(options: {
  baseModel: string;
  dataset?: { path: string; split?: string; local?: boolean };
  outputDir?: string;
  padToken?: string;
}): string {
  const dataset = options.dataset ?? { path: "mlabonne/orpo-dpo-mix-40k-flat", split: "train" };
  const padLines =
    options.padToken === undefined
      ? "# special_tokens: the blog sets pad_token (Llama 3's <|end_of_text|>); set this model's own\n"
      : `special_tokens:\n  pad_token: ${JSON.stringify(options.padToken)}\n`;
  return `# Axolotl config: heal an abliterated model with DPO, as Labonne's "Uncensor any LLM with abliteration" does.
# Run: accelerate launch -m axolotl.cli.train this.yaml
#
# The chat format: the dataset type chatml.intel reads flat rows (system, question, chosen, rejected) and writes
# them in ChatML (<|im_start|>user ... <|im_end|>), whatever chat template the model itself was trained with.
# The blog uses it on a ChatML-trained model with mlabonne/orpo-dpo-mix-40k-flat, the flat variant: the plain
# mlabonne/orpo-dpo-mix-40k holds chosen/rejected as lists of messages, which chatml.intel would paste in as
# text. For a model with another template (the demo's is <|user|> ... <|end|>), train it on ChatML turns only if
# you mean to change its format; otherwise use an Axolotl dataset type (or chat_template) matching its own.
base_model: ${options.baseModel}
model_type: AutoModelForCausalLM
tokenizer_type: AutoTokenizer

load_in_8bit: false
load_in_4bit: true
strict: false
save_safetensors: true

rl: dpo
chat_template: chatml
datasets:
  - path: ${dataset.path}
${dataset.local ? "    ds_type: json\n" : ""}    split: ${dataset.split ?? "train"}
    type: chatml.intel
val_set_size: 0.0
output_dir: ${options.outputDir ?? "./healed"}

adapter: qlora
sequence_len: 2048
sample_packing: false
pad_to_sequence_len: false
lora_r: 64
lora_alpha: 32
lora_dropout: 0.05
lora_target_linear: true

gradient_accumulation_steps: 8
micro_batch_size: 1
num_epochs: 1
optimizer: paged_adamw_8bit
lr_scheduler: cosine
learning_rate: 5e-6
weight_decay: 0.0
warmup_steps: 100
train_on_inputs: false
bf16: auto
gradient_checkpointing: true
logging_steps: 1
saves_per_epoch: 1

# As the blog: FlashAttention 2 and DeepSpeed ZeRO-2 (a file of Axolotl's repository) across several GPUs
# (6 x A6000 there). On one GPU, drop deepspeed; without flash-attn installed, set flash_attention: false.
flash_attention: true
deepspeed: deepspeed_configs/zero2.json
${padLines}`;
}
