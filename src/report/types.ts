// What a run of the whole method reports: written as report.json, drawn in report.html.
import type { CandidateEvaluation } from "../pipeline/candidates.ts";
import type { AnswerAgreement } from "../pipeline/measures.ts";
import type { CandidateScores, SelectionFilters } from "../pipeline/select.ts";
import type { Verification } from "../export/verify.ts";

export interface RunReport {
  model: string;
  backend: string;
  device: string;
  nLayers: number;
  dModel: number;
  counts: Record<string, number>;
  refusalTokens: number[];
  directions: { layer: number; hook: string; tokenOffset: number; norm: number }[];
  /** Cosine similarity between the layers' directions at the chosen hook point. */
  cosine: { hook: string; layers: number[]; matrix: number[][] };
  selection: {
    /** paper: resid_pre candidates at the post-instruction tokens, the paper's epsilons; extended: every hook. */
    mode: "paper" | "extended";
    baseline: { harmfulRefusalScore: number; harmlessRefusalScore: number };
    filters: SelectionFilters;
    candidates: (Omit<CandidateScores, "direction"> & { layer: number; hook: string })[];
    chosen: string;
    /** Prompt passes and seconds the selection took, and whether it scored every candidate in full. */
    passes: number;
    seconds: number;
    exhaustive: boolean;
  };
  /** The selection's best candidates, read by generation. */
  candidates: CandidateEvaluation[];
  chosen: { key: string; layer: number; hook: string; tokenOffset: number; norm: number };
  /** New tokens per answer: the candidates' generations and the export's check; the final evaluation (before/after). */
  newTokens: { candidates: number; evaluation: number };
  /** The test split's measures; topicMention: the share of harmful answers that mention their request's topic (`mentionsTopic`). */
  before: { harmfulRefusalRate: number; harmlessRefusalRate: number; topicMention: number };
  after: { harmfulRefusalRate: number; harmlessRefusalRate: number; harmlessKl: number; topicMention: number };
  /** Tokens per whitespace-separated word over the test split's requests (`tokensPerWord`), to compare the splits' with. */
  testTokensPerWord: number;
  /** Further evaluation splits (the project's free-form requests by default), measured as the test split. */
  splits: SplitReport[];
  /** Harmless answers unchanged (after against before), and coherent compliance (harmful answers after against a compliant reference). */
  agreement: { harmlessUnchanged: AnswerAgreement; coherentCompliance?: AnswerAgreement; complianceReference?: string };
  /** Where the model ships its planted refusal direction (the demo): the found directions' cosine with it. */
  planted?: {
    /** Where it is written: the safety units' layer and the safety head's layer. */
    unitLayer: number;
    headLayer: number;
    chosenCosine: number;
    /**
     * Shares of the chosen difference of means' squared norm: along the planted direction, along the same
     * difference of means in the compliance reference (the model before safety tuning), and the rest.
     */
    explained?: { planted: number; other: number; rest: number };
    cosines: { layer: number; hook: string; tokenOffset: number; cosine: number }[];
  };
  /** Projections of the test prompts' activations on the chosen direction, before abliteration. */
  projections: { harmful: number[]; harmless: number[] };
  verify: Verification;
  samples: { instruction: string; before: string; after: string }[];
  exportDir: string;
  /** With `adapter`: the edit as a rank-1 PEFT LoRA adapter (its folder, target modules, whether to untie before merging). */
  adapter?: { outDir: string; modules: string[]; untieBeforeMerging: boolean };
  /** The memory estimate checked before the run, and the wasm heap's size after it (its peak). */
  memory: { estimatedPeakBytes: number; weightLayout: string; wasmHeapBytes?: number };
  seconds: number;
}

/** An evaluation split beside the test split: the same measures before and after, and its first answers. */
export interface SplitReport {
  name: string;
  counts: { harmful: number; harmless: number };
  /** Tokens per whitespace-separated word over the split's requests (the model's tokenizer, no chat template). */
  tokensPerWord: number;
  before: { harmfulRefusalRate: number; harmlessRefusalRate: number; topicMention: number };
  after: { harmfulRefusalRate: number; harmlessRefusalRate: number; harmlessKl: number; topicMention: number };
  /** Harmless answers after against before. */
  harmlessUnchanged: AnswerAgreement;
  samples: { kind: "harmful" | "harmless"; instruction: string; before: string; after: string }[];
}
