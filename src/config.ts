// config.json parsed into a typed config that keeps Hugging Face's field names verbatim.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";

export const SUPPORTED_MODEL_TYPES = ["llama", "mistral", "qwen2", "gemma"] as const;
export type ModelType = (typeof SUPPORTED_MODEL_TYPES)[number];

const ropeScalingSchema = z.looseObject({
  rope_type: z.string().optional(),
  type: z.string().optional(), // older configs name the field `type`
  factor: z.number().optional(),
  low_freq_factor: z.number().optional(),
  high_freq_factor: z.number().optional(),
  original_max_position_embeddings: z.number().optional(),
});

const configSchema = z.looseObject({
  model_type: z.string(),
  hidden_size: z.number().int().positive(), // d_model: width of the residual stream
  intermediate_size: z.number().int().positive(), // d_mlp: width of the MLP's hidden layer
  num_hidden_layers: z.number().int().positive(),
  num_attention_heads: z.number().int().positive(),
  num_key_value_heads: z.number().int().positive().optional(), // < heads means grouped-query attention
  head_dim: z.number().int().positive().nullish(), // defaults to hidden_size / num_attention_heads
  vocab_size: z.number().int().positive(),
  rms_norm_eps: z.number().positive().default(1e-6),
  rope_theta: z.number().positive().default(10000),
  rope_scaling: ropeScalingSchema.nullish(),
  max_position_embeddings: z.number().int().positive().optional(),
  tie_word_embeddings: z.boolean().optional(),
  attention_bias: z.boolean().optional(), // llama: bias on q, k, v and o projections
  mlp_bias: z.boolean().optional(),
  hidden_act: z.string().optional(),
  hidden_activation: z.string().nullish(), // gemma's newer name for hidden_act
  bos_token_id: z.union([z.number(), z.array(z.number())]).nullish(),
  eos_token_id: z.union([z.number(), z.array(z.number())]).nullish(),
  pad_token_id: z.number().nullish(),
  torch_dtype: z.string().optional(),
});

export type ModelConfig = z.infer<typeof configSchema> & { model_type: ModelType };

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** Validate a parsed config.json; `source` names the file in errors. */
export function parseConfig(json: unknown, source = "config.json"): ModelConfig {
  const result = configSchema.safeParse(json);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
    throw new ConfigError(`${source}: ${problems}`);
  }
  const config = result.data;
  if (!(SUPPORTED_MODEL_TYPES as readonly string[]).includes(config.model_type)) {
    throw new ConfigError(`${source}: model_type "${config.model_type}" is not supported (supported: ${SUPPORTED_MODEL_TYPES.join(", ")})`);
  }
  const heads = config.num_attention_heads;
  const kvHeads = config.num_key_value_heads ?? heads;
  if (heads % kvHeads !== 0) throw new ConfigError(`${source}: num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kvHeads}`);
  if (config.head_dim == null && config.hidden_size % heads !== 0) {
    throw new ConfigError(`${source}: hidden_size ${config.hidden_size} is not divisible by num_attention_heads ${heads} and head_dim is not given`);
  }
  const scaling = config.rope_scaling;
  if (scaling) {
    const type = scaling.rope_type ?? scaling.type;
    if (type !== "llama3" && type !== "default") throw new ConfigError(`${source}: rope_scaling type "${type}" is not supported (supported: llama3, default)`);
  }
  return config as ModelConfig;
}

export async function loadConfig(dir: string): Promise<ModelConfig> {
  const path = join(dir, "config.json");
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new ConfigError(`${path}: cannot read config.json (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); is ${dir} a Hugging Face checkpoint folder?`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${path}: not valid JSON (${(error as Error).message})`);
  }
  return parseConfig(json, path);
}

// Derived sizes, named as TransformerLens names them.
export const headDim = (c: ModelConfig) => c.head_dim ?? c.hidden_size / c.num_attention_heads;
export const numKvHeads = (c: ModelConfig) => c.num_key_value_heads ?? c.num_attention_heads;
export const tiedEmbeddings = (c: ModelConfig) => c.tie_word_embeddings ?? c.model_type === "gemma";

/** The ids that end generation: config eos (one or several). */
export function eosTokenIds(c: ModelConfig): number[] {
  const eos = c.eos_token_id;
  if (eos == null) return [];
  return Array.isArray(eos) ? eos : [eos];
}
