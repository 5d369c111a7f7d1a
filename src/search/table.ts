// A study's Pareto front as rows a person reads: each front trial's measures and its edit in words, sorted by
// refusal rate; shared by the CLI's table, search.html and the notebook.
import type { Study } from "./study.ts";
import { trialVariants } from "./search.ts";
import type { StrengthKernel } from "../pipeline/orthogonalize.ts";

/** A type, not an interface, so that notebooks can pass rows to showTable (Record<string, unknown>). */
export type FrontRow = {
  trial: number;
  refusal: number;
  kl: number;
  /** The edit in words: hook and direction index, kernels, switches. */
  edit: string;
};

const kernelText = (k: StrengthKernel) =>
  `max ${k.maxWeight.toFixed(2)} at layer ${k.maxWeightPosition.toFixed(1)}, ` +
  `min ${k.minWeight.toFixed(2)} at distance ${k.minWeightDistance.toFixed(1)}`;

export function describeTrialEdit(params: Study["trials"][number]["params"]): string {
  const { index, hook, variants } = trialVariants(params);
  const parts = [`${hook} direction index ${index.toFixed(2)}`];
  if (variants.kernels?.attention) parts.push(`attention ${kernelText(variants.kernels.attention)}`);
  if (variants.kernels?.mlp) parts.push(`MLP ${kernelText(variants.kernels.mlp)}`);
  for (const [on, name] of [
    [variants.projectAgainstHarmless, "projected"],
    [variants.biproject, "biprojected"],
    [variants.normPreserving, "norm-preserving"],
  ] as const)
    if (on) parts.push(name);
  return parts.join("; ");
}

/** The front's trials, fewest refusals first (then least KL). */
export function frontRows(study: Pick<Study, "trials">, front: readonly number[]): FrontRow[] {
  const onFront = new Set(front);
  return study.trials
    .filter((t) => onFront.has(t.trial))
    .sort((a, b) => a.refusal - b.refusal || a.kl - b.kl || a.trial - b.trial)
    .map((t) => ({ trial: t.trial, refusal: t.refusal, kl: t.kl, edit: describeTrialEdit(t.params) }));
}
