// Access to the copied reference checkpoints and their float64 expected outputs.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import type { FwdHook, HookedModel } from "../../src/index.ts";

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "..", "fixtures");
export const REFERENCE_ARCHS = [
  "llama",
  "llama31",
  "mistral",
  "qwen2",
  "gemma",
  "qwen3",
  "gemma2",
  "gemma3_text",
  "gemma3",
  "phi3",
] as const;
/** Architectures whose attention and MLP outputs pass through a norm before the residual add. */
export const SANDWICH_ARCHS: readonly ReferenceArch[] = ["gemma2", "gemma3_text", "gemma3"];
export type ReferenceArch = (typeof REFERENCE_ARCHS)[number];

export interface Reference {
  arch: string;
  seqs: number[][];
  last_logits: number[][];
  seq0_logits: number[][];
  alone_last_logits: number[][];
  resid_last: Record<string, number[][]>;
  bf16_last_logits: number[][];
  f16_last_logits: number[][];
  harmful: number[][];
  harmless: number[][];
  mean_diff_last: Record<string, number[]>;
  direction: number[];
  ablated_last_logits: number[][];
  actadd_l1_last_logits: number[][];
  refusal_tokens: number[];
  refusal_score: number[];
  refusal_score_ablated: number[];
  kl_base_vs_ablated: number[];
  ortho_last_logits: number[][];
  greedy: number[];
  greedy_margins: number[];
  // Folders added later:
  resid_write_v_component_max?: number;
  naive_ortho_last_logits?: number[][];
  naive_ortho_resid_write_v_component_max?: number;
  long_seq?: number[];
  long_last_logits?: number[][];
  long_last_logits_short_factor?: number[][];
  long_batch_last_logits?: number[][];
  text_weight_prefix?: string;
  non_text_tensors?: string[];
}

const cache = new Map<string, Reference>();
export function reference(arch: ReferenceArch): Reference {
  if (!cache.has(arch)) cache.set(arch, JSON.parse(readFileSync(join(FIXTURES, "reference-models", arch, "reference.json"), "utf8")));
  return cache.get(arch)!;
}

export function modelDir(arch: ReferenceArch, variant: "f32" | "bf16" | "f16" | "sharded" = "f32"): string {
  return join(FIXTURES, "reference-models", arch, variant);
}

/** Largest |a - b| over two equally shaped nested arrays. */
export function maxAbsDiff(actual: ArrayLike<number> | number[][], expected: ArrayLike<number> | number[][]): number {
  const a = flatten(actual);
  const e = flatten(expected);
  assert.equal(a.length, e.length, `length ${a.length} differs from expected ${e.length}`);
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - e[i]);
    if (!(d <= max)) max = Number.isNaN(d) ? Infinity : d;
  }
  return max;
}

function flatten(x: ArrayLike<number> | number[][]): number[] {
  const out: number[] = [];
  for (let i = 0; i < x.length; i++) {
    const v = (x as ArrayLike<unknown>)[i];
    if (typeof v === "number") out.push(v);
    else out.push(...flatten(v as number[]));
  }
  return out;
}

export function assertClose(
  actual: ArrayLike<number> | number[][],
  expected: ArrayLike<number> | number[][],
  tolerance: number,
  what: string,
): void {
  const diff = maxAbsDiff(actual, expected);
  assert.ok(diff <= tolerance, `${what}: max abs difference ${diff} exceeds ${tolerance}`);
}

export const LOGIT_TOLERANCE = 1e-3;

/** Last-position logits of token sequences (left-padded into one batch), as nested arrays. */
export async function lastLogits(model: HookedModel, seqs: number[][], fwdHooks: readonly FwdHook[] = []): Promise<number[][]> {
  const logits = model.forward(seqs, { logits: "last", fwdHooks });
  const values = (await logits.array()) as number[][][];
  logits.dispose();
  return values.map((row) => row[0]);
}
