// What a run of the whole method reports: written as report.json, drawn in report.html.
import type { CandidateEvaluation } from "../pipeline/candidates.ts";
import type { CandidateScores, SelectionFilters } from "../pipeline/select.ts";
import type { Verification } from "../pipeline/verify.ts";

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
  before: { harmfulRefusalRate: number; harmlessRefusalRate: number };
  after: { harmfulRefusalRate: number; harmlessRefusalRate: number; harmlessKl: number };
  /** Projections of the test prompts' activations on the chosen direction, before abliteration. */
  projections: { harmful: number[]; harmless: number[] };
  verify: Verification;
  samples: { instruction: string; before: string; after: string }[];
  exportDir: string;
  /** The memory estimate checked before the run, and the wasm heap's size after it (its peak). */
  memory: { estimatedPeakBytes: number; weightLayout: string; wasmHeapBytes?: number };
  seconds: number;
}
