// The public API: notebooks, the CLI and tests import from here, as a user would.
export { initBackend, backendInfo, BACKENDS, type BackendInfo, type BackendName } from "./backend.ts";
export { loadConfig, parseConfig, ConfigError, SUPPORTED_MODEL_TYPES, type ModelConfig } from "./config.ts";
export { CheckpointWeights, CheckpointError } from "./checkpoint.ts";
export { SafetensorsFile, SafetensorsError, readHeader } from "./safetensors/read.ts";
export { writeSafetensors, writeCheckpointWeights, planShards, floatTensor, type TensorToWrite } from "./safetensors/write.ts";
export { decodeToFloat32, encodeFromFloat32, type FloatDtype } from "./safetensors/dtype.ts";
export { actName, hookNames, parseHookName, BLOCK_HOOKS, RESID_HOOKS, type HookFn, type FwdHook, type HookPoint, type NameFilter, type ResidHook } from "./hooks.ts";
export { ChatTokenizer, padLeft, TokenizerError, type Batch, type ChatMessage } from "./tokenizer.ts";
export { loadModel, HookedModel, ActivationCache, type TokensInput, type GenerateOptions, type Generation } from "./model.ts";
export { makeRng, argmax } from "./sampling.ts";
export { directionAblationHooks, activationAdditionHooks, projectOut, normalize, checkDirection } from "./interventions.ts";
export { collectMeanActivations, toBatch, type MeanActivations, type CollectOptions } from "./pipeline/activations.ts";
export { computeDirections, saveDirections, loadDirections, cosineSimilarity, directionKey, type Direction } from "./pipeline/directions.ts";
export { refusalScore, klDivergence, logSoftmax, refusalTokensFor, REFUSAL_OPENINGS } from "./pipeline/scores.ts";
export { DEFAULT_REFUSAL_SUBSTRINGS, isRefusal, refusalRate, generateCompletions, lastPositionLogits, meanKl } from "./pipeline/evaluate.ts";
export { scoreCandidates, rankByMeanAbs, type CandidateScores, type Selection } from "./pipeline/select.ts";
export { orthogonalizeModel, orthogonalizeTensor, residualWriterKind, type OrthogonalizeOptions } from "./pipeline/orthogonalize.ts";
export { exportAbliterated, ExportError, type ExportOptions, type ExportResult } from "./pipeline/export.ts";
