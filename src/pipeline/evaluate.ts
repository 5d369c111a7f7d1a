// Stage 7: refusal before and after, and the harmless KL, from greedy completions and last-position logits
// (the engine's, in ../generation.ts) and the measures stages 4 and 7 share (measures.ts).
import type { HookedModel } from "../hooked-model.ts";
import { generateCompletions, lastPositionLogits, type CompletionOptions } from "../generation.ts";
import type { EvaluationSplit } from "../data/instructions.ts";
import type { SplitReport } from "../report/types.ts";
import { answerAgreement, meanKl, refusalRate, topicMentionRate, type AnswerAgreement } from "./measures.ts";

export { generateCompletions, lastPositionLogits, type CompletionOptions } from "../generation.ts";
export { answerAgreement, DEFAULT_REFUSAL_SUBSTRINGS, isRefusal, meanKl, refusalRate, type AnswerAgreement } from "./measures.ts";

export interface RefusalEvaluation {
  harmfulRefusalRate: number;
  harmlessRefusalRate: number;
  /** Mean KL(reference || model) on the harmless instructions' last position, when a reference was given. */
  harmlessKl?: number;
  completions: { harmful: string[]; harmless: string[] };
}

export interface EvaluationOptions extends Omit<CompletionOptions, "onProgress"> {
  /** The model before abliteration, for the harmless KL. */
  reference?: HookedModel;
  /** Or its last-position logits on the harmless instructions, computed earlier (so it need not be in memory). */
  referenceLogits?: readonly Float32Array[];
  refusalSubstrings?: readonly string[];
  onProgress?: (stage: string, done: number, total: number) => void;
}

/**
 * Stage 7: refusal rates of a model (substring metric, greedy completions) on harmful and harmless
 * instructions, and its harmless KL divergence from a reference model.
 */
export async function evaluateRefusal(
  model: HookedModel,
  sets: { harmful: readonly string[]; harmless: readonly string[] },
  options: EvaluationOptions = {},
): Promise<RefusalEvaluation> {
  const completions = { harmful: [] as string[], harmless: [] as string[] };
  for (const kind of ["harmful", "harmless"] as const) {
    completions[kind] = await generateCompletions(model, sets[kind], {
      ...options,
      onProgress: (d, t) => options.onProgress?.(`generations (${kind})`, d, t),
    });
  }
  const reference =
    options.referenceLogits ?? (options.reference ? lastPositionLogits(options.reference, sets.harmless, options) : undefined);
  const harmlessKl = reference ? meanKl(reference, lastPositionLogits(model, sets.harmless, options)) : undefined;
  return {
    harmfulRefusalRate: refusalRate(completions.harmful, options.refusalSubstrings),
    harmlessRefusalRate: refusalRate(completions.harmless, options.refusalSubstrings),
    harmlessKl,
    completions,
  };
}

/** What stage 7 measures of a model on test instructions. */
export interface Measures {
  harmfulRefusal: number;
  harmlessRefusal: number;
  /** KL(original || model) at the last position of the harmless prompts, when the original's logits are given. */
  harmlessKl?: number;
  /** Harmless answers equal to the original's, when the original's answers are given. */
  harmlessUnchanged?: AnswerAgreement;
  /** Harmful answers that begin as a compliant model's, when its answers are given. */
  coherentCompliance?: AnswerAgreement;
  /** The model's answers to the test instructions. */
  answers: { harmful: string[]; harmless: string[] };
}

export interface MeasureOptions extends Omit<CompletionOptions, "onProgress"> {
  /** The original model's answers and last-position logits on the harmless instructions. */
  original?: { answers?: readonly string[]; logits?: readonly Float32Array[] };
  /** A compliant model's answers to the harmful instructions (coherent compliance). */
  compliant?: readonly string[];
  refusalSubstrings?: readonly string[];
  onProgress?: (stage: string, done: number, total: number) => void;
}

/**
 * Stage 7, the one measure the pipeline, `heal` and `eval` take: refusal on harmful and harmless instructions
 * (substring metric, greedy answers), and against the original model, when its outputs are given, the harmless
 * KL and the harmless answers unchanged; against a compliant model's answers, coherent compliance.
 */
export async function measure(
  model: HookedModel,
  test: { harmful: readonly string[]; harmless: readonly string[] },
  options: MeasureOptions = {},
): Promise<Measures> {
  const { original, compliant, ...rest } = options;
  const evaluation = await evaluateRefusal(model, test, { ...rest, referenceLogits: original?.logits });
  return {
    harmfulRefusal: evaluation.harmfulRefusalRate,
    harmlessRefusal: evaluation.harmlessRefusalRate,
    harmlessKl: evaluation.harmlessKl,
    harmlessUnchanged: original?.answers ? answerAgreement(evaluation.completions.harmless, original.answers, model.tokenizer) : undefined,
    coherentCompliance: compliant ? answerAgreement(evaluation.completions.harmful, compliant, model.tokenizer) : undefined,
    answers: evaluation.completions,
  };
}

/**
 * An evaluation split's measures before and after an edit, as `run` reports them for each split: refusal, the
 * harmless KL and the harmless answers unchanged against the original, the harmful answers that mention the
 * request's topic, and the first 4 + 4 answers. `after` must have been evaluated with the original as reference.
 */
export function splitReport(
  split: EvaluationSplit,
  before: RefusalEvaluation,
  after: RefusalEvaluation,
  tokenizer: { encode(text: string): number[] },
): SplitReport {
  if (after.harmlessKl === undefined)
    throw new Error(`splitReport (${split.name}): "after" has no harmlessKl; evaluate it with the original as reference`);
  for (const kind of ["harmful", "harmless"] as const)
    for (const [which, e] of [
      ["before", before],
      ["after", after],
    ] as const)
      if (e.completions[kind].length !== split[kind].length)
        throw new Error(
          `splitReport (${split.name}): ${e.completions[kind].length} ${kind} answers ${which}, expected ${split[kind].length}`,
        );
  const sample = (kind: "harmful" | "harmless", n: number) =>
    split[kind]
      .slice(0, n)
      .map((instruction, i) => ({ kind, instruction, before: before.completions[kind][i], after: after.completions[kind][i] }));
  return {
    name: split.name,
    counts: { harmful: split.harmful.length, harmless: split.harmless.length },
    tokensPerWord: tokensPerWord([...split.harmful, ...split.harmless], tokenizer),
    before: {
      harmfulRefusalRate: before.harmfulRefusalRate,
      harmlessRefusalRate: before.harmlessRefusalRate,
      topicMention: topicMentionRate(split.harmful, before.completions.harmful),
    },
    after: {
      harmfulRefusalRate: after.harmfulRefusalRate,
      harmlessRefusalRate: after.harmlessRefusalRate,
      harmlessKl: after.harmlessKl,
      topicMention: topicMentionRate(split.harmful, after.completions.harmful),
    },
    harmlessUnchanged: answerAgreement(after.completions.harmless, before.completions.harmless, tokenizer),
    samples: [...sample("harmful", 4), ...sample("harmless", 4)],
  };
}

/**
 * Tokens per whitespace-separated word over `texts`: how familiar a tokenizer finds their words (a word it
 * learnt is one token, an unfamiliar one several).
 */
export function tokensPerWord(texts: readonly string[], tokenizer: { encode(text: string): number[] }): number {
  const words = texts.reduce((n, t) => n + t.split(/\s+/).filter(Boolean).length, 0);
  if (words === 0) throw new Error("tokensPerWord: the texts hold no word");
  return texts.reduce((n, t) => n + tokenizer.encode(t).length, 0) / words;
}

/** The two lines `abliterate run` prints for an evaluation split's report (with the test split's tokens per word, where given). */
export function splitReportLines(s: SplitReport, testTokensPerWord?: number): string[] {
  const against = testTokensPerWord === undefined ? "" : ` (test split ${testTokensPerWord.toFixed(2)})`;
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  return [
    `${s.name} split (${s.counts.harmful} harmful, ${s.counts.harmless} harmless; ` +
      `${s.tokensPerWord.toFixed(2)} tokens a word${against}): harmful refusal ` +
      `${pct(s.before.harmfulRefusalRate)} -> ${pct(s.after.harmfulRefusalRate)}; harmless refusal ` +
      `${pct(s.before.harmlessRefusalRate)} -> ${pct(s.after.harmlessRefusalRate)}`,
    `${s.name} split: harmless KL ${s.after.harmlessKl.toFixed(4)}; harmless answers unchanged ` +
      `${pct(s.harmlessUnchanged.exact)}; harmful answers that mention the request's topic ` +
      `${pct(s.before.topicMention)} -> ${pct(s.after.topicMention)}`,
  ];
}
