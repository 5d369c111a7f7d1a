// What differs between the supported architectures, as data: which tensors a checkpoint holds and
// under which names, and the few numeric choices of the forward pass. The forward pass itself is one,
// in decoder.ts; models/registry.ts maps each config.json model_type to one of these.
import type * as tf from "@tensorflow/tfjs-core";
import type { ModelConfig } from "./model-config.ts";

export type Activation = (x: tf.Tensor) => tf.Tensor;

export interface Architecture {
  /** config.json's model_type. */
  modelType: string;
  /** Defaults of Hugging Face's config class for the fields a config.json may leave out. */
  configDefaults: Record<string, unknown>;
  /** The language model's config sits in `text_config` (a multimodal checkpoint). */
  textConfig?: boolean;
  /** Prefix of every text-model tensor name (multimodal checkpoints nest the language model). */
  keyPrefix: string;
  /** MLP activations by the names config.json may give (hidden_act / hidden_activation). */
  activations: Readonly<Record<string, Activation>>;
  /** Token embeddings are multiplied by sqrt(hidden_size) (Gemma). */
  scaleEmbeddings: boolean;
  /** RMSNorm computes `x / rms(x) * (normOffset + w)` (Gemma stores w - 1). */
  normOffset: 0 | 1;
  /** Whether q, k, v and o projections carry biases. */
  qkvBias(config: ModelConfig): boolean;
  oBias(config: ModelConfig): boolean;
  /** RMSNorm over each head of q and k before RoPE (Qwen3, Gemma 3). */
  qkNorm: boolean;
  /**
   * Four norms per layer (Gemma 2/3): the attention and MLP outputs are normalised before the residual
   * add (`post_attention_layernorm`, `post_feedforward_layernorm`), the MLP input by `pre_feedforward_layernorm`.
   */
  sandwichNorms: boolean;
  /** q, k, v in one `qkv_proj` and gate, up in one `gate_up_proj` (Phi-3). */
  fusedProjections: boolean;
  /** Whether `layer` uses sliding-window attention when config.json has no `layer_types`. */
  slidingLayer(config: ModelConfig, layer: number): boolean;
  /** RoPE base of sliding-window layers, used there without rope_scaling (Gemma 3); else rope_theta everywhere. */
  localRopeBase?(config: ModelConfig): number;
  /** Attention scores are multiplied by this (1 / sqrt(head_dim) unless the config says otherwise). */
  attentionScale(config: ModelConfig): number;
  /**
   * How this family's refusals begin, each a single token: the paper's refusal score sums their
   * probabilities at the last position (Arditi et al.: "I" for Llama and Gemma, "I" and "As" for Qwen).
   */
  refusalOpenings: readonly string[];
  /** Further checks of config.json; throw a ConfigError naming `source`. */
  checkConfig?(config: ModelConfig, source: string): void;
}

/** Residual-stream keys of layer `l`, as the checkpoint names them (before the architecture's prefix). */
export const layerKey = (l: number, rest: string) => `model.layers.${l}.${rest}`;

/** Which layers attend through a sliding window: config.layer_types where given, else the architecture's rule. */
export function slidingLayers(config: ModelConfig, arch: Architecture): boolean[] {
  return Array.from({ length: config.num_hidden_layers }, (_, l) =>
    config.layer_types ? config.layer_types[l] === "sliding_attention" : arch.slidingLayer(config, l),
  );
}
