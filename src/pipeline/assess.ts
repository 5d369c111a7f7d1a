// Stage 7 in full, for `abliterate eval` and the notebooks: long answers read by every refusal detector (and a
// judge model when given), harmful answers split into refused / degenerate / compliant, over-refusal on harmless
// requests, and harmless damage three ways (first-token KL, exact and with the paper's epsilon; KL over the first
// k answer tokens; cross-entropy of the reference text set). Other models (the original, the judge) are loaded one
// at a time and freed, so at most two models are ever in memory.
import type { HookedModel } from "../hooked-model.ts";
import { generateCompletions } from "../generation.ts";
import { loadModel } from "../load.ts";
import { klReference, perTokenNll, crossEntropy, tailLogits, type KlReference } from "./damage.ts";
import {
  compareDetectors,
  complianceBreakdown,
  degenerateAnswers,
  judgeDetector,
  keywordDetectors,
  likelihoodBar,
  type ComplianceBreakdown,
  type DetectorReport,
  type JudgeOptions,
  type RefusalDetector,
} from "./detectors.ts";
import { answerAgreement, meanKl, type AnswerAgreement } from "./measures.ts";
import { PAPER_KL_EPSILON } from "./scores.ts";

export interface AssessOptions {
  /** The original model (a folder or Hub id, or loaded): KL, unchanged answers' bar for "unlike", its cross-entropy. */
  original?: string | HookedModel;
  /** A chat model judging refusals (a folder or Hub id, or loaded). */
  judge?: string | HookedModel;
  judgeOptions?: JudgeOptions;
  /** New tokens per answer (default 128: refusals that come after a first compliant sentence are read too). */
  maxNewTokens?: number;
  /** KL over the original's first k answer tokens (default 8). */
  klTokens?: number;
  /** Texts for the cross-entropy (default: none). */
  referenceTexts?: readonly string[];
  /** Detectors beside the keyword lists and the judge (e.g. the user's own substrings). */
  extraDetectors?: readonly RefusalDetector[];
  /** The detector that splits harmful answers into refused / degenerate / compliant (default "paper"). */
  breakdownBy?: string;
  batchSize?: number;
  onProgress?: (stage: string, done: number, total: number) => void;
}

export interface Assessment {
  n: { harmful: number; harmless: number };
  maxNewTokens: number;
  /** Every detector on the harmful answers, and on the harmless answers (over-refusal). */
  harmful: DetectorReport;
  harmless: DetectorReport;
  /** Harmful answers: refused (by `breakdownBy`), degenerate, compliant. */
  breakdown: ComplianceBreakdown & { by: string; unlikeMeasured: boolean };
  /** Damage against the original, when it was given. */
  damage?: {
    /** Mean first-token KL(original || model) on the harmless prompts: exact, and as the paper's code computes it (epsilon 1e-6). */
    firstTokenKl: number;
    firstTokenKlPaper: number;
    /** Mean KL over the original's first k answer tokens, teacher-forced. */
    multiTokenKl: number;
    klTokens: number;
    /** Harmless answers equal to the original's own. */
    harmlessUnchanged: AnswerAgreement;
  };
  /** Cross-entropy (nats per token) of the reference texts: the model's, and the original's when given. */
  crossEntropy?: { model: number; original?: number };
  answers: { harmful: string[]; harmless: string[] };
}

async function withModel<T>(source: string | HookedModel, fn: (m: HookedModel) => Promise<T> | T): Promise<T> {
  if (typeof source !== "string") return fn(source);
  const m = await loadModel(source);
  try {
    return await fn(m);
  } finally {
    m.dispose();
  }
}

/** Assess `model` on harmful and harmless instructions (see the module comment). */
export async function assessModel(
  model: HookedModel,
  sets: { harmful: readonly string[]; harmless: readonly string[] },
  options: AssessOptions = {},
): Promise<Assessment> {
  if (sets.harmful.length === 0 || sets.harmless.length === 0) throw new Error("assessModel: needs harmful and harmless instructions");
  const maxNewTokens = options.maxNewTokens ?? 128;
  const klTokens = options.klTokens ?? 8;
  const { batchSize, onProgress } = options;
  const answers = { harmful: [] as string[], harmless: [] as string[] };
  for (const kind of ["harmful", "harmless"] as const)
    answers[kind] = await generateCompletions(model, sets[kind], {
      maxNewTokens,
      batchSize,
      onProgress: (d, t) => onProgress?.(`generations (${kind})`, d, t),
    });

  // What only the original can say: its logits, its own answers' likelihood, the likelihood of these answers.
  let original: { first: KlReference; reference: KlReference; own: string[]; bar: number; harmfulNll: number[]; ce?: number } | undefined;
  if (options.original) {
    onProgress?.("original model", 0, 1);
    original = await withModel(options.original, async (o) => {
      const first = await klReference(o, sets.harmless, 1, batchSize);
      const reference = await klReference(o, sets.harmless, klTokens, batchSize);
      const own = await generateCompletions(o, sets.harmless, { maxNewTokens, batchSize });
      const ownNll = perTokenNll(o, own, { batchSize }).filter(Number.isFinite);
      return {
        first,
        reference,
        own,
        bar: likelihoodBar(ownNll),
        harmfulNll: perTokenNll(o, answers.harmful, { batchSize }).map((x) => (Number.isNaN(x) ? 0 : x)),
        ce: options.referenceTexts?.length ? crossEntropy(o, options.referenceTexts, { batchSize }) : undefined,
      };
    });
  }

  const detectors = [...keywordDetectors(), ...(options.extraDetectors ?? [])];
  const judged = async <T>(fn: () => Promise<T>) => {
    if (!options.judge) return fn();
    return withModel(options.judge, async (judge) => {
      detectors.push(judgeDetector(judge, { batchSize, ...options.judgeOptions }));
      try {
        return await fn();
      } finally {
        detectors.pop();
      }
    });
  };
  onProgress?.("detectors", 0, 1);
  const [harmful, harmless] = await judged(async () => [
    await compareDetectors(detectors, answers.harmful, sets.harmful),
    await compareDetectors(detectors, answers.harmless, sets.harmless),
  ]);
  const by = options.breakdownBy ?? "paper";
  const verdicts = harmful.detectors.find((d) => d.name === by);
  if (!verdicts)
    throw new Error(`no detector "${by}" to split the harmful answers by: one of ${harmful.detectors.map((d) => d.name).join(", ")}`);
  const degenerate = degenerateAnswers(answers.harmful, original ? { nll: { answers: original.harmfulNll, bar: original.bar } } : {});

  let damage: Assessment["damage"];
  if (original) {
    const first = tailLogits(model, original.first.ids, original.first.positions, [], batchSize);
    damage = {
      firstTokenKl: meanKl(original.first.logits, first),
      firstTokenKlPaper: meanKl(original.first.logits, first, PAPER_KL_EPSILON),
      multiTokenKl: meanKl(
        original.reference.logits,
        tailLogits(model, original.reference.ids, original.reference.positions, [], batchSize),
      ),
      klTokens,
      harmlessUnchanged: answerAgreement(answers.harmless, original.own, model.tokenizer),
    };
  }
  return {
    n: { harmful: sets.harmful.length, harmless: sets.harmless.length },
    maxNewTokens,
    harmful,
    harmless,
    breakdown: { ...complianceBreakdown(verdicts.verdicts, degenerate), by, unlikeMeasured: original !== undefined },
    damage,
    crossEntropy: options.referenceTexts?.length
      ? { model: crossEntropy(model, options.referenceTexts, { batchSize }), original: original?.ce }
      : undefined,
    answers,
  };
}
