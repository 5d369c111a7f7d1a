// Where prompts fall along a direction and in the plane around it: each prompt's activation at the
// direction's own hook point and token offset, its scalar projection x . r (stage 7's picture of what the
// direction separates), and two-dimensional views of the activations for pictures (the plane of r and the
// largest remaining variance; principal components).
import { actName } from "../hooks.ts";
import type { HookedModel } from "../hooked-model.ts";
import { dot } from "../projection.ts";
import { makeRng } from "../sampling.ts";
import { promptBatches, type Prompts } from "../batches.ts";
import type { Direction, UsableDirection } from "./directions.ts";

/** Each prompt's activation at one hook point and token offset (a direction's own, by default), one row each. */
export function activationsAt(
  model: HookedModel,
  prompts: Prompts,
  at: Pick<Direction, "hook" | "layer" | "tokenOffset">,
  options: { batchSize?: number } = {},
): Float32Array[] {
  const name = actName(at.hook, at.layer);
  const rows: Float32Array[] = [];
  for (const { batch } of promptBatches(model, prompts, options.batchSize)) {
    const { logits, cache } = model.runWithCache(batch, { namesFilter: [name], cachePositions: [at.tokenOffset], logits: "last" });
    logits.dispose();
    const values = cache.get(name).dataSync(); // [batch, 1, d_model]
    cache.dispose();
    for (let b = 0; b < batch.inputIds.length; b++) rows.push(Float32Array.from(values.subarray(b * model.dModel, (b + 1) * model.dModel)));
  }
  return rows;
}

export function projectionsOn(
  model: HookedModel,
  prompts: Prompts,
  direction: UsableDirection,
  options: { batchSize?: number } = {},
): number[] {
  return activationsAt(model, prompts, direction, options).map((x) => dot(x, direction.unit));
}

export interface PrincipalComponents {
  /** The mean row, subtracted before the components were found. */
  mean: Float64Array;
  /** Unit vectors, largest variance first. */
  components: Float64Array[];
  /** The variance of the rows along each component, and in total. */
  variances: number[];
  totalVariance: number;
}

/**
 * The top `k` principal components of the rows (power iteration with deflation on the centred rows; seeded,
 * so the same rows give the same signs). Components orthogonal to `exclude` when given (a unit vector):
 * the largest variance left once that direction is taken out.
 */
export function principalComponents(
  rows: readonly ArrayLike<number>[],
  k: number,
  options: { exclude?: ArrayLike<number>; iterations?: number; seed?: number } = {},
): PrincipalComponents {
  if (rows.length < 2) throw new Error(`principal components need at least 2 rows, got ${rows.length}`);
  const d = rows[0].length;
  rows.forEach((r, i) => {
    if (r.length !== d) throw new Error(`principal components: row ${i} has ${r.length} values, row 0 has ${d}`);
  });
  if (!(k >= 1 && k <= Math.min(d, rows.length)))
    throw new Error(`principal components: k must be between 1 and ${Math.min(d, rows.length)}, got ${k}`);
  const mean = new Float64Array(d);
  for (const r of rows) for (let j = 0; j < d; j++) mean[j] += r[j] / rows.length;
  const centred = rows.map((r) => Float64Array.from({ length: d }, (_, j) => r[j] - mean[j]));
  const against: ArrayLike<number>[] = options.exclude ? [options.exclude] : [];
  const orthogonalise = (v: Float64Array) => {
    for (const u of against) {
      const s = dot(v, u);
      for (let j = 0; j < d; j++) v[j] -= s * u[j];
    }
  };
  const totalVariance = centred.reduce((s, r) => s + dot(r, r), 0) / rows.length;
  const rng = makeRng(options.seed ?? 0);
  const components: Float64Array[] = [];
  const variances: number[] = [];
  for (let c = 0; c < k; c++) {
    let v = Float64Array.from({ length: d }, () => rng() - 0.5);
    let variance = 0;
    for (let it = 0; it < (options.iterations ?? 200); it++) {
      orthogonalise(v);
      // v <- X^T X v / n, with X the centred rows
      const next = new Float64Array(d);
      for (const r of centred) {
        const s = dot(r, v);
        for (let j = 0; j < d; j++) next[j] += (s * r[j]) / rows.length;
      }
      orthogonalise(next);
      const norm = Math.sqrt(dot(next, next));
      if (norm === 0) break;
      for (let j = 0; j < d; j++) next[j] /= norm;
      variance = norm;
      const change = 1 - Math.abs(dot(next, v)) / Math.sqrt(dot(v, v));
      v = next;
      if (change < 1e-12) break;
    }
    // A fixed sign: the largest entry positive.
    let big = 0;
    for (let j = 1; j < d; j++) if (Math.abs(v[j]) > Math.abs(v[big])) big = j;
    if (v[big] < 0) for (let j = 0; j < d; j++) v[j] = -v[j];
    components.push(v);
    variances.push(variance);
    against.push(v);
  }
  return { mean, components, variances, totalVariance };
}

/** Each row's coordinates on the given axes (unit vectors), after subtracting `origin` when given. */
export function coordinates(
  rows: readonly ArrayLike<number>[],
  axes: readonly ArrayLike<number>[],
  origin?: ArrayLike<number>,
): number[][] {
  return rows.map((r) => axes.map((a) => dot(r, a) - (origin ? dot(origin, a) : 0)));
}
