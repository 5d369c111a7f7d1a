// Real models' shapes, for benchmarks and the memory tests: random weights, the exact sizes.
export const SMOLLM2_135M_SHAPES = {
  model_type: "llama", hidden_size: 576, intermediate_size: 1536, num_hidden_layers: 30, num_attention_heads: 9, num_key_value_heads: 3,
  vocab_size: 49152, rms_norm_eps: 1e-5, rope_theta: 100000, max_position_embeddings: 8192, tie_word_embeddings: true,
  bos_token_id: 1, eos_token_id: 2, pad_token_id: 2,
};
export const SMOLLM2_360M_SHAPES = { ...SMOLLM2_135M_SHAPES, hidden_size: 960, intermediate_size: 2560, num_hidden_layers: 32, num_attention_heads: 15, num_key_value_heads: 5 };
export const QWEN25_05B_SHAPES = {
  model_type: "qwen2", hidden_size: 896, intermediate_size: 4864, num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2,
  vocab_size: 151936, rms_norm_eps: 1e-6, rope_theta: 1000000, max_position_embeddings: 32768, tie_word_embeddings: true, hidden_act: "silu",
  bos_token_id: 151643, eos_token_id: 151645, pad_token_id: 151643,
};
export const QWEN3_06B_SHAPES = {
  model_type: "qwen3", hidden_size: 1024, intermediate_size: 3072, num_hidden_layers: 28, num_attention_heads: 16, num_key_value_heads: 8, head_dim: 128,
  vocab_size: 151936, rms_norm_eps: 1e-6, rope_theta: 1000000, max_position_embeddings: 40960, tie_word_embeddings: true, hidden_act: "silu",
  bos_token_id: 151643, eos_token_id: 151645, pad_token_id: 151643,
};
export const QWEN25_15B_SHAPES = { ...QWEN25_05B_SHAPES, hidden_size: 1536, intermediate_size: 8960, num_hidden_layers: 28, num_attention_heads: 12, num_key_value_heads: 2 };
export const QWEN25_3B_SHAPES = { ...QWEN25_05B_SHAPES, hidden_size: 2048, intermediate_size: 11008, num_hidden_layers: 36, num_attention_heads: 16, num_key_value_heads: 2 };
export const LLAMA3_8B_SHAPES = {
  model_type: "llama", hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8,
  vocab_size: 128256, rms_norm_eps: 1e-5, rope_theta: 500000, max_position_embeddings: 8192, tie_word_embeddings: false, hidden_act: "silu",
  bos_token_id: 128000, eos_token_id: 128009,
};
export const TINYLLAMA_SHAPES = {
  model_type: "llama", hidden_size: 2048, intermediate_size: 5632, num_hidden_layers: 22, num_attention_heads: 32, num_key_value_heads: 4,
  vocab_size: 32000, rms_norm_eps: 1e-5, rope_theta: 10000, max_position_embeddings: 2048, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2,
};
