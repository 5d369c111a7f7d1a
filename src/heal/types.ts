// What healing reports: the measures of a model on the test split, and the whole run. Apart from run.ts so
// that the report's renderer (report/html.ts) reads them without importing the run.
import type { AnswerAgreement } from "../pipeline/measures.ts";
import type { DpoStep } from "./train.ts";

/** What the test split shows of a model. */
export interface HealMetrics {
  harmfulRefusal: number;
  harmlessRefusal: number;
  /** KL(original || model) at the last position of the harmless prompts. */
  harmlessKl: number;
  /** Harmless answers equal to the original model's. */
  harmlessUnchanged: AnswerAgreement;
  coherentCompliance?: AnswerAgreement;
  /** The model's answers to the test instructions. */
  answers: { harmful: string[]; harmless: string[] };
}

export interface HealReport {
  model: string;
  original: string;
  /** Where the pairs came from, how many were used, and for made pairs how many answer pairs were sampled (identical ones are dropped). */
  pairs: { source: string; n: number; sampled?: number };
  settings: Record<string, unknown>;
  history: DpoStep[];
  before: HealMetrics;
  after: HealMetrics;
  exportDir: string;
  /** Largest |logit difference| between the reloaded export and the model with its adapters, on the harmless test prompts. */
  exportCheck: number;
  seconds: number;
}
