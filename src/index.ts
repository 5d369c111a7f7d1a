// The public API: notebooks, the CLI and tests import from here, as a user would. The engine first,
// then one function per stage of the method, in its order.

// The engine: backend, checkpoints, the hooked model, hook points, interventions.
export { initBackend, backendInfo, BACKENDS, type BackendInfo, type BackendName } from "./backend.ts";
export { loadConfig, parseConfig, architectureFor, ConfigError, SUPPORTED_MODEL_TYPES, type ModelConfig } from "./config.ts";
export { planWeights, estimateMemory, WASM_HEAP_LIMIT_BYTES, type WeightPlan, type MemoryEstimate, type RunShape } from "./memory.ts";
export { CheckpointWeights, CheckpointError } from "./checkpoint.ts";
export { SafetensorsFile, SafetensorsError, readHeader } from "./safetensors/read.ts";
export { writeSafetensors, writeCheckpointWeights, planShards, floatTensor, type TensorToWrite } from "./safetensors/write.ts";
export { decodeToFloat32, encodeFromFloat32, type FloatDtype } from "./safetensors/dtype.ts";
export { snapshotDownload, resolveModel, datasetSplitFiles, hubCacheDir, hubEndpoint, HubError } from "./hub.ts";
export {
  loadModel,
  openCheckpoint,
  parseWeightPrecision,
  weightPrecision,
  type Checkpoint,
  type LoadOptions,
  type WeightPrecision,
} from "./load.ts";
export {
  HookedModel,
  ActivationCache,
  type TokensInput,
  type RunOptions,
  type CacheOptions,
  type GenerateOptions,
  type Generation,
} from "./hooked-model.ts";
export { ChatTokenizer, padLeft, TokenizerError, type Batch, type ChatMessage } from "./tokenizer.ts";
export { ChatTemplateError, MAX_RENDERED_CHARS, RENDER_TIMEOUT_MS } from "./chat-template.ts";
export { makeRng, argmax } from "./sampling.ts";
export {
  actName,
  hookNames,
  BLOCK_HOOKS,
  RESID_HOOKS,
  type HookFn,
  type FwdHook,
  type HookPoint,
  type NameFilter,
  type ResidHook,
} from "./hooks.ts";
export { unitVector, projectRows, projectRowsNormPreserving, projectColumnsNormPreserving, dot, type UnitVector } from "./projection.ts";
export { directionAblationHooks, editHooks, activationAdditionHooks, withHooks, type Intervention } from "./interventions.ts";
export { promptBatches, type Prompts } from "./batches.ts";

// Stage 1: instructions.
export {
  loadInstructions,
  loadInstructionSource,
  loadInstructionSets,
  loadEvaluationSplits,
  FREEFORM_SPLIT,
  parseCsv,
  DatasetError,
  type InstructionSets,
  type EvaluationSplit,
  type EvaluationSplitSource,
} from "./data/instructions.ts";
// Stage 2: mean activations.
export {
  collectMeanActivations,
  meanNorms,
  saveMeanActivations,
  loadMeanActivations,
  type MeanActivations,
  type CollectOptions,
} from "./pipeline/activations.ts";
// Stage 3: directions.
export {
  computeDirections,
  usableDirections,
  usable,
  pickDirection,
  checkDirectionsFit,
  saveDirections,
  loadDirections,
  cosineSimilarity,
  directionKey,
  chooseDirection,
  directionAtIndex,
  harmlessMeansAt,
  type ChosenDirection,
  type Direction,
  type UsableDirection,
} from "./pipeline/directions.ts";
// Stage 4: ranking and selection (the blog's, the paper's), candidates read by generation.
export { refusalScore, klDivergence, logSoftmax, refusalTokensFor, PAPER_REFUSAL_EPSILON, PAPER_KL_EPSILON } from "./pipeline/scores.ts";
export {
  filterByRefusalScore,
  paperCandidates,
  paperChoice,
  postInstructionOffsets,
  candidateBlock,
  blogRanking,
  BLOG_REFUSAL_BLACKLIST,
  rankRawByMeanAbs,
  scoreCandidates,
  rankedCandidates,
  chosenCandidate,
  DEFAULT_SELECTION_FILTERS,
  type CandidateScores,
  type ScoredCandidate,
  type Selection,
  type SelectionFilters,
} from "./pipeline/select.ts";
export { evaluateCandidates, chooseByGeneration, type CandidateEvaluation } from "./pipeline/candidates.ts";
// Stage 5: weight orthogonalisation, its variants, and two edits side by side.
export { compareEdits, withEditInPlace, type EditUnderTest, type EditComparison } from "./pipeline/compare.ts";
// The search over the edit: a seeded TPE sampler, Pareto fronts, study files.
export { searchEdits, editSearchSpace, trialEdit, trialVariants, studyFront, hooksAreExact, type SearchOptions } from "./search/search.ts";
export { klReference, tailLogits, perTokenNll, crossEntropy, type KlReference } from "./pipeline/damage.ts";
export {
  BROAD_REFUSAL_KEYWORDS,
  DEFAULT_JUDGE_TEMPLATE,
  DEMO_REFUSALS,
  demoTruthDetector,
  substringDetector,
  keywordDetectors,
  judgeDetector,
  judgeRefusalProbabilities,
  compareDetectors,
  repetition,
  degenerateAnswers,
  likelihoodBar,
  complianceBreakdown,
  type RefusalDetector,
  type JudgeOptions,
  type DetectorReport,
  type DegenerateReason,
  type ComplianceBreakdown,
} from "./pipeline/detectors.ts";
export {
  sampleParams,
  splitHistory,
  tpeGamma,
  tpeWeights,
  TPE_DEFAULTS,
  type SearchSpace,
  type ParamSpec,
  type Params,
  type CompletedTrial,
  type TpeSettings,
} from "./search/tpe.ts";
export { paretoFront, nonDominatedRanks, dominates, hypervolume2d } from "./search/pareto.ts";
export { readStudy, type Study, type StudySettings, type TrialRecord, type TrialMeasures } from "./search/study.ts";
export { frontRows, describeTrialEdit, type FrontRow } from "./search/table.ts";
export { resolveEdit, type EditVariants, type ResolvedEdit } from "./pipeline/edit.ts";
export { exportPeftAdapter, type PeftExportOptions, type PeftExportResult } from "./export/peft.ts";
export {
  orthogonalizeModel,
  orthogonalizeTensor,
  residualWriterKind,
  planEdit,
  planCheckpointEdit,
  planModelEdit,
  kernelStrength,
  projectAgainst,
  type StrengthKernel,
  type OrthogonalizeOptions,
  type EditPlan,
  type TensorEdit,
} from "./pipeline/orthogonalize.ts";
// Stage 6: export and its verification.
export { exportAbliterated, ExportError, type ExportOptions, type ExportResult } from "./export/safetensors.ts";
export {
  verifyExport,
  residualWriteComponent,
  shareAlong,
  maxAbsDifference,
  VERIFY_TOLERANCE,
  type Verification,
} from "./export/verify.ts";
export {
  exportGguf,
  ggufTensorName,
  GGUF_TYPES,
  GgufExportError,
  type GgufExportOptions,
  type GgufExportResult,
  type GgufFileType,
} from "./export/gguf/export.ts";
export { verifyGguf, GGUF_LOGPROB_TOLERANCE, GGUF_MIN_TOKEN_AGREEMENT, type GgufVerification } from "./export/gguf/verify.ts";
export { LLAMA_CPP_QUANTS, quantizeWithLlamaCpp, type LlamaCppQuant } from "./export/gguf/quantize.ts";
export {
  loadGguf,
  llamaCppGreedy,
  llamaCppLogProbs,
  llamaCppTokenize,
  llamaCppDetokenize,
  llamaCppChatTokens,
} from "./export/gguf/llama-cpp.ts";
// Stage 7: evaluation.
export {
  DEFAULT_REFUSAL_SUBSTRINGS,
  isRefusal,
  refusalRate,
  generateCompletions,
  lastPositionLogits,
  meanKl,
  evaluateRefusal,
  answerAgreement,
  splitReport,
  splitReportLines,
  type AnswerAgreement,
  type RefusalEvaluation,
} from "./pipeline/evaluate.ts";
export { topicStems, mentionsTopic, topicMentionRate } from "./pipeline/measures.ts";
export { projectionsOn, activationsAt, principalComponents, coordinates, type PrincipalComponents } from "./pipeline/projections.ts";
// Stage 8: healing (DPO on LoRA adapters).
export { answerLogProbs, pairLogProbs, dpoTerms, dpoLoss, type PreferencePair, type PairLogProbs, type DpoTerms } from "./heal/dpo.ts";
export { LoraAdapters, LORA_DEFAULT_MODULES, type LoraOptions } from "./heal/lora.ts";
export {
  trainDpo,
  learningRateAt,
  epochMeans,
  trainingSummary,
  REWARD_WIN_MARGIN,
  type DpoOptions,
  type DpoStep,
  type DpoResult,
} from "./heal/train.ts";
export {
  loadPreferences,
  preferenceFromRow,
  tokenizePreferences,
  savePreferences,
  saveChatmlIntel,
  demoHealingPairs,
  axolotlConfig,
  type PreferenceText,
} from "./heal/data.ts";
export { runHealing, healMetrics, type HealOptions, type HealReport, type HealMetrics } from "./heal/run.ts";
// The whole method, and its report.
export { runPipeline, type PipelineOptions, type ReportStep, type RunFindings } from "./pipeline/run.ts";
export { writeReport } from "./report/write.ts";
export type { RunReport, SplitReport } from "./report/types.ts";
export {
  directionNormsFigure,
  strengthKernelFigure,
  cosineHeatmapFigure,
  selectionScoresFigure,
  candidateRefusalFigure,
  beforeAfterFigure,
  projectionFigure,
  ablationPictureFigure,
  activationScatterFigure,
  dpoTrainingFigure,
  paretoFigure,
  trialParameterFigure,
  type Figure,
} from "./report/plots.ts";
export { figureSvg } from "./report/static-svg.ts";

// Notebooks and project files.
export {
  showFigure,
  liveFigure,
  showPicture,
  showTable,
  progressBar,
  stepProgressBars,
  displayBundle,
  inKernel,
} from "./notebook/display.ts";
export { loraPictureSvg, type LoraPictureInput } from "./report/lora-picture.ts";
export type { RankingCandidate } from "./notebook/solutions.ts";
export {
  exercise,
  checkDpoLoss,
  checkRefusalDirection,
  checkBlogRanking,
  checkAblation,
  checkOrthogonalizedWeight,
  checkNormPreservingColumns,
  checkOnParetoFront,
  checkKl,
  checkRefusalScore,
  checkLeftPadding,
  checkLastTokenMean,
  checkLargestWriteAlong,
  ExerciseNotWritten,
  exerciseSummary,
  lastExerciseResult,
  EXERCISE_GOALS,
  SOLUTIONS_SWITCH,
  type ExerciseResult,
} from "./notebook/exercises.ts";
export { DEMO_MODEL_DIR, DEMO_BASE_MODEL_DIR, DATA_DIR, dataFile, displayPath } from "./paths.ts";
export {
  loadPlanted,
  demoGroundTruth,
  groundTruthStep,
  type PlantedSummary,
  cosineWithPlanted,
  explainDifference,
  defaultComplianceReference,
  type PlantedDirection,
} from "./pipeline/ground-truth.ts";
