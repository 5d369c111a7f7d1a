// config.json as the engine reads it: the fields of the supported architectures (Hugging Face's names), their
// bounds, and the small derived quantities every part of the engine uses. Parsing and loading, which need the
// architecture registry, are in ../config.ts.
import { z } from "zod";

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

export const configSchema = z.looseObject({
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

/** The MLP's activation function name, as config.json gives it. */
export const activationName = (c: ModelConfig): string => c.hidden_activation ?? c.hidden_act ?? "silu";

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
