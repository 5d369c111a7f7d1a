// config.json parsed into a typed config that keeps Hugging Face's field names verbatim. Which
// model_types exist, and the defaults Hugging Face's config class gives the fields a config.json may
// omit, come from the one table in models/registry.ts.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { ARCHITECTURES, architectureOf, type Architecture } from "./models/registry.ts";

const ropeScalingSchema = z.looseObject({
  rope_type: z.string().optional(),
  type: z.string().optional(), // older configs name the field `type`
  factor: z.number().positive().optional(),
  low_freq_factor: z.number().optional(),
  high_freq_factor: z.number().optional(),
  original_max_position_embeddings: z.number().int().positive().optional(),
  short_factor: z.array(z.number().positive()).optional(), // longrope
  long_factor: z.array(z.number().positive()).optional(),
  attention_factor: z.number().positive().nullish(),
});

// Bounds a real checkpoint stays far inside; a config outside them is a typo or an attack, and would
// otherwise fail minutes later with an out-of-memory crash.
const count = (max: number) => z.number().int().positive().max(max);

const configSchema = z.looseObject({
  model_type: z.string(),
  hidden_size: count(1 << 16), // d_model: width of the residual stream
  intermediate_size: count(1 << 18), // d_mlp: width of the MLP's hidden layer
  num_hidden_layers: count(1024),
  num_attention_heads: count(1024),
  num_key_value_heads: count(1024).optional(), // < heads means grouped-query attention
  head_dim: count(4096).nullish(), // defaults to hidden_size / num_attention_heads
  vocab_size: count(1 << 22),
  rms_norm_eps: z.number().positive().max(1).default(1e-6),
  rope_theta: z.number().positive().default(10000),
  rope_scaling: ropeScalingSchema.nullish(),
  partial_rotary_factor: z.number().positive().max(1).optional(), // phi3 (Phi-4-mini): only this fraction of each head is rotated
  original_max_position_embeddings: z.number().int().positive().optional(), // phi3 longrope
  max_position_embeddings: count(1 << 24).optional(),
  tie_word_embeddings: z.boolean().optional(),
  attention_bias: z.boolean().optional(), // bias on q, k, v and o projections
  mlp_bias: z.boolean().optional(),
  hidden_act: z.string().nullish(),
  hidden_activation: z.string().nullish(), // gemma's newer name for hidden_act
  query_pre_attn_scalar: z.number().positive().optional(), // gemma2/3: scores scaled by its -1/2 power, not head_dim's
  attn_logit_softcapping: z.number().positive().nullish(), // gemma2: tanh(s / c) * c on attention scores
  final_logit_softcapping: z.number().positive().nullish(), // gemma2: the same on the logits
  sliding_window: count(1 << 24).nullish(), // keys a sliding-window layer sees, itself included
  layer_types: z.array(z.enum(["sliding_attention", "full_attention"])).optional(),
  sliding_window_pattern: count(1024).optional(), // gemma3 before layer_types: every n-th layer is global
  use_sliding_window: z.boolean().optional(), // qwen2/qwen3
  max_window_layers: z.number().int().nonnegative().optional(),
  rope_local_base_freq: z.number().positive().optional(), // gemma3: RoPE base of sliding-window layers
  bos_token_id: z.union([z.number(), z.array(z.number())]).nullish(),
  eos_token_id: z.union([z.number(), z.array(z.number())]).nullish(),
  pad_token_id: z.number().nullish(),
  torch_dtype: z.string().nullish(),
});

export type ModelConfig = z.infer<typeof configSchema>;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

export const SUPPORTED_MODEL_TYPES: readonly string[] = Object.keys(ARCHITECTURES);

/**
 * Validate a parsed config.json; `source` names the file in errors. A multimodal checkpoint whose
 * language model sits in `text_config` (Gemma 3) gives that text config, keeping the outer model_type.
 */
export function parseConfig(json: unknown, source = "config.json"): ModelConfig {
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new ConfigError(`${source}: not a JSON object`);
  const record = json as Record<string, unknown>;
  const type = record.model_type;
  if (typeof type !== "string") throw new ConfigError(`${source}: model_type: expected a string, got ${JSON.stringify(type)}`);
  if (!Object.hasOwn(ARCHITECTURES, type)) throw new ConfigError(`${source}: model_type "${type}" is not supported (supported: ${SUPPORTED_MODEL_TYPES.join(", ")})`);
  const arch = ARCHITECTURES[type];
  let fields: Record<string, unknown> = record;
  if (arch.textConfig) {
    const text = record.text_config;
    if (typeof text !== "object" || text === null) throw new ConfigError(`${source}: model_type "${type}" keeps its language model in text_config, which is missing`);
    // Token ids usually sit at the top level of a multimodal config.
    const ids = Object.fromEntries(["bos_token_id", "eos_token_id", "pad_token_id", "tie_word_embeddings", "torch_dtype"].filter((k) => Object.hasOwn(record, k)).map((k) => [k, record[k]]));
    fields = { ...ids, ...(text as Record<string, unknown>), model_type: type };
  }
  const result = configSchema.safeParse({ ...arch.configDefaults, ...fields });
  if (!result.success) {
    const prefix = arch.textConfig ? "text_config." : "";
    const problems = result.error.issues.map((i) => `${prefix}${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
    throw new ConfigError(`${source}: ${problems}`);
  }
  const config = result.data;
  const heads = config.num_attention_heads;
  const kvHeads = config.num_key_value_heads ?? heads;
  if (heads % kvHeads !== 0) throw new ConfigError(`${source}: num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kvHeads}`);
  if (config.head_dim == null && config.hidden_size % heads !== 0) {
    throw new ConfigError(`${source}: hidden_size ${config.hidden_size} is not divisible by num_attention_heads ${heads} and head_dim is not given`);
  }
  const activation = activationName(config);
  if (!Object.hasOwn(arch.activations, activation)) {
    throw new ConfigError(`${source}: activation "${activation}" is not supported for model_type ${type} (supported: ${Object.keys(arch.activations).join(", ")})`);
  }
  if (config.layer_types && config.layer_types.length !== config.num_hidden_layers) {
    throw new ConfigError(`${source}: layer_types has ${config.layer_types.length} entries for ${config.num_hidden_layers} layers`);
  }
  arch.checkConfig?.(config, source);
  checkRopeScaling(config, source);
  return config;
}

/** The MLP's activation function name, as config.json gives it. */
export const activationName = (c: ModelConfig): string => c.hidden_activation ?? c.hidden_act ?? "silu";

const ROPE_TYPES = ["default", "linear", "llama3", "longrope"];

function checkRopeScaling(config: ModelConfig, source: string): void {
  const scaling = config.rope_scaling;
  if (!scaling) return;
  if (scaling.type === "su") scaling.type = "longrope"; // Phi-3's first configs named longrope "su", as Hugging Face renames it
  const type = scaling.rope_type ?? scaling.type;
  if (type === undefined || !ROPE_TYPES.includes(type)) throw new ConfigError(`${source}: rope_scaling type "${type}" is not supported (supported: ${ROPE_TYPES.join(", ")})`);
  if (type === "linear" && scaling.factor === undefined) throw new ConfigError(`${source}: rope_scaling of type linear needs a factor`);
  if (type === "longrope") {
    const half = rotaryDim(config) / 2;
    for (const name of ["short_factor", "long_factor"] as const) {
      const f = scaling[name];
      if (!f || f.length !== half) throw new ConfigError(`${source}: rope_scaling.${name} must list ${half} numbers (rotary dimension / 2), got ${f ? f.length : "none"}`);
    }
  }
}

export async function loadConfig(dir: string): Promise<ModelConfig> {
  return parseConfig(await readConfigJson(dir), join(dir, "config.json"));
}

/** config.json as JSON, unvalidated (the export rewrites it). */
export async function readConfigJson(dir: string): Promise<Record<string, unknown>> {
  const path = join(dir, "config.json");
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new ConfigError(`${path}: cannot read config.json (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); is ${dir} a Hugging Face checkpoint folder?`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${path}: not valid JSON (${(error as Error).message})`);
  }
}

export function architectureFor(config: ModelConfig): Architecture {
  return architectureOf(config.model_type);
}

// Derived sizes, named as TransformerLens names them.
export const headDim = (c: ModelConfig) => c.head_dim ?? c.hidden_size / c.num_attention_heads;
export const numKvHeads = (c: ModelConfig) => c.num_key_value_heads ?? c.num_attention_heads;
/** Dimensions of each head that RoPE rotates (all of them unless partial_rotary_factor < 1). */
export const rotaryDim = (c: ModelConfig) => Math.floor(headDim(c) * (c.partial_rotary_factor ?? 1));
export const tiedEmbeddings = (c: ModelConfig) => c.tie_word_embeddings ?? false;

/** The ids that end generation: config eos (one or several). */
export function eosTokenIds(c: ModelConfig): number[] {
  const eos = c.eos_token_id;
  if (eos == null) return [];
  return Array.isArray(eos) ? eos : [eos];
}
