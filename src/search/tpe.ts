// A seeded Tree-structured Parzen Estimator (Bergstra et al. 2011, "Algorithms for Hyper-Parameter
// Optimization"), with the defaults of Optuna's TPESampler (which heretic runs): 10 random start-up trials,
// then for each parameter independently (Optuna's univariate default) a Parzen estimator l(x) of the best
// gamma(n) = min(ceil(0.1 n), 25) trials and g(x) of the rest, each with a prior kernel (weight 1) and
// Optuna's "magic clip" bandwidths; 24 candidates drawn from l, the one of largest log l(x) - log g(x) kept.
// Two objectives split the history as Optuna's MOTPE does (Ozaki et al. 2022): the best ceil(0.1 n) trials
// (no cap) by non-dominated rank, the last rank cut by greedy hypervolume contribution; the good trials are
// weighted uniformly (as Optuna 5.0 does) and the rest by Optuna's default ramp. Checked by hand against
// Optuna 5.0.0's TPESampler (test/fixtures/optuna-tpe; README, "Searching the edit").
// Reproducible: the random numbers of trial n come from (seed, n) alone, so a resumed study draws what an
// uninterrupted one would.
import { makeRng } from "../sampling.ts";
import { hypervolume2d, nonDominatedRanks } from "./pareto.ts";

export type ParamSpec =
  { kind: "float"; low: number; high: number } | { kind: "categorical"; choices: readonly (string | number | boolean)[] };
export type SearchSpace = Readonly<Record<string, ParamSpec>>;
export type ParamValue = number | string | boolean;
export type Params = Record<string, ParamValue>;

export interface CompletedTrial {
  params: Params;
  /** Objective values, all minimised. */
  values: readonly number[];
}

export interface TpeSettings {
  seed: number;
  /** Random trials before TPE takes over (Optuna: 10). */
  startupTrials?: number;
  /** Candidates drawn from l(x) per parameter (Optuna: 24). */
  candidates?: number;
}

export const TPE_DEFAULTS = { startupTrials: 10, candidates: 24 } as const;

/** Optuna's default gamma: how many of n trials count as good. */
export const tpeGamma = (n: number) => Math.min(Math.ceil(0.1 * n), 25);

/** Optuna's default gamma with several objectives: no cap. */
export const tpeGammaMultiObjective = (n: number) => Math.ceil(0.1 * n);

/** Optuna's default weights of the n trials of a group, oldest first: flat up to 25, then a ramp for older ones. */
export function tpeWeights(n: number): number[] {
  if (n < 25) return new Array<number>(n).fill(1);
  const ramp = Array.from({ length: n - 25 }, (_, i) => (n - 25 === 1 ? 1 / n : 1 / n + ((1 - 1 / n) * i) / (n - 26)));
  return [...ramp, ...new Array<number>(25).fill(1)];
}

export function checkSpace(space: SearchSpace): void {
  for (const [name, spec] of Object.entries(space)) {
    if (spec.kind === "float") {
      if (!(Number.isFinite(spec.low) && Number.isFinite(spec.high) && spec.low < spec.high))
        throw new Error(`search space: ${name} needs finite bounds low < high, got [${spec.low}, ${spec.high}]`);
    } else if (spec.choices.length === 0) throw new Error(`search space: ${name} has no choices`);
  }
}

/** murmur3's finaliser: every input bit moves every output bit. */
function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** A 32-bit hash of the seed, the trial number and the parameter's name: each draw's own generator. */
function streamSeed(seed: number, trial: number, name: string): number {
  let h = fmix(fmix((seed >>> 0) ^ 0x9e3779b9) ^ fmix((trial + 0x632be59b) >>> 0));
  for (const c of name) h = Math.imul(h ^ c.charCodeAt(0), 16777619);
  return fmix(h);
}

/**
 * The parameters of trial `trial` given the completed trials before it: random for the first start-up trials,
 * then TPE. Same seed, space and history: same parameters.
 */
export function sampleParams(space: SearchSpace, history: readonly CompletedTrial[], trial: number, settings: TpeSettings): Params {
  checkSpace(space);
  const startup = settings.startupTrials ?? TPE_DEFAULTS.startupTrials;
  const candidates = settings.candidates ?? TPE_DEFAULTS.candidates;
  const params: Params = {};
  const random = history.length < startup;
  const [below, above] = random ? [[], []] : splitHistory(history);
  for (const [name, spec] of Object.entries(space)) {
    const rng = makeRng(streamSeed(settings.seed, trial, name));
    if (random) {
      params[name] =
        spec.kind === "float" ? spec.low + rng() * (spec.high - spec.low) : spec.choices[Math.floor(rng() * spec.choices.length)];
      continue;
    }
    const observed = (group: readonly CompletedTrial[]) => group.map((t) => t.params[name]);
    params[name] =
      spec.kind === "float"
        ? sampleFloat(spec, observed(below) as number[], observed(above) as number[], candidates, rng)
        : sampleCategorical(spec.choices, observed(below), observed(above), candidates, rng);
  }
  return params;
}

/**
 * The good and the rest of the history, each in trial order. One objective: the gamma(n) lowest values. Two:
 * whole non-dominated ranks while they fit, then the points of the next rank that add most hypervolume.
 */
export function splitHistory(history: readonly CompletedTrial[]): [CompletedTrial[], CompletedTrial[]] {
  const n = history.length;
  const objectives = history[0]?.values.length ?? 0;
  const nBelow = objectives === 1 ? tpeGamma(n) : tpeGammaMultiObjective(n);
  let chosen: Set<number>;
  if (objectives === 1) {
    const order = history.map((_, i) => i).sort((a, b) => history[a].values[0] - history[b].values[0] || a - b);
    chosen = new Set(order.slice(0, nBelow));
  } else if (objectives === 2) {
    const points = history.map((t) => t.values);
    const ranks = nonDominatedRanks(points);
    chosen = new Set<number>();
    for (let rank = 0; chosen.size < nBelow; rank++) {
      const members = ranks.flatMap((r, i) => (r === rank ? [i] : []));
      if (chosen.size + members.length <= nBelow) {
        members.forEach((i) => chosen.add(i));
        continue;
      }
      // Greedy hypervolume subset selection on the rank that does not fit whole, against a reference
      // point just beyond the worst of its members.
      const worst = [0, 1].map((k) => Math.max(...members.map((i) => points[i][k])));
      const reference: [number, number] = [
        worst[0] + Math.max(1e-12, Math.abs(worst[0]) * 0.1),
        worst[1] + Math.max(1e-12, Math.abs(worst[1]) * 0.1),
      ];
      const picked: number[] = [];
      let left = [...members];
      while (chosen.size + picked.length < nBelow) {
        const base = hypervolume2d(
          picked.map((i) => points[i]),
          reference,
        );
        let best = left[0];
        let bestGain = -Infinity;
        for (const i of left) {
          const gain =
            hypervolume2d(
              [...picked, i].map((j) => points[j]),
              reference,
            ) - base;
          if (gain > bestGain) [best, bestGain] = [i, gain];
        }
        picked.push(best);
        left = left.filter((i) => i !== best);
      }
      picked.forEach((i) => chosen.add(i));
    }
  } else throw new Error(`the TPE sampler here takes one or two objectives, got ${objectives}`);
  history.forEach((t, i) => {
    if (t.values.length !== objectives) throw new Error(`trial ${i} has ${t.values.length} objective values, trial 0 has ${objectives}`);
  });
  return [history.filter((_, i) => chosen.has(i)), history.filter((_, i) => !chosen.has(i))];
}

// --- Parzen estimators -----------------------------------------------------------------------------------

interface Mixture {
  weights: number[];
  mus: number[];
  sigmas: number[];
}

/** Optuna's univariate Parzen estimator over [low, high]: a kernel per observation plus the prior's. */
function parzen(observations: readonly number[], low: number, high: number, weightsOf: (n: number) => number[]): Mixture {
  // Each observation's bandwidth is the larger gap to its neighbours among the observations and the bounds (the
  // prior's centre is not a neighbour: it is added after, with the whole range as its width).
  const order = observations.map((_, i) => i).sort((a, b) => observations[a] - observations[b]);
  const sorted = [low, ...order.map((i) => observations[i]), high];
  const sigmasSorted = order.map((_, k) => Math.max(sorted[k + 1] - sorted[k], sorted[k + 2] - sorted[k + 1]));
  if (order.length >= 2) {
    // consider_endpoints=False: the outermost kernels look at their inner neighbour only.
    sigmasSorted[0] = sorted[2] - sorted[1];
    sigmasSorted[order.length - 1] = sorted[order.length] - sorted[order.length - 1];
  }
  const sigmas = new Array<number>(observations.length);
  order.forEach((i, k) => (sigmas[i] = sigmasSorted[k]));
  // Optuna's magic clip: no narrower than the range over min(100, 1 + kernels), the prior's kernel counted.
  const max = high - low;
  const min = (high - low) / Math.min(100, 2 + observations.length);
  for (let i = 0; i < sigmas.length; i++) sigmas[i] = Math.min(max, Math.max(min, sigmas[i]));
  const mus = [...observations, 0.5 * (low + high)];
  sigmas.push(high - low); // the prior
  const weights = [...weightsOf(observations.length), 1];
  const total = weights.reduce((a, b) => a + b, 0);
  return { weights: weights.map((w) => w / total), mus, sigmas };
}

const SQRT2 = Math.SQRT2;
/** erf to 1.5e-7 (Abramowitz and Stegun 7.1.26): enough for truncation masses of kernels. */
function erf(x: number): number {
  const s = Math.sign(x);
  const a = Math.abs(x);
  const t = 1 / (1 + 0.3275911 * a);
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-a * a);
  return s * y;
}
const normalCdf = (x: number, mu: number, sigma: number) => 0.5 * (1 + erf((x - mu) / (sigma * SQRT2)));

/** log of the mixture of normals truncated to [low, high] at x. */
function logDensity(m: Mixture, x: number, low: number, high: number): number {
  let p = 0;
  for (let k = 0; k < m.mus.length; k++) {
    const z = (x - m.mus[k]) / m.sigmas[k];
    const mass = Math.max(1e-12, normalCdf(high, m.mus[k], m.sigmas[k]) - normalCdf(low, m.mus[k], m.sigmas[k]));
    p += (m.weights[k] * Math.exp(-0.5 * z * z)) / (m.sigmas[k] * Math.sqrt(2 * Math.PI) * mass);
  }
  return Math.log(Math.max(p, 1e-300));
}

function pick(weights: readonly number[], u: number): number {
  let acc = 0;
  for (let k = 0; k < weights.length; k++) {
    acc += weights[k];
    if (u < acc) return k;
  }
  return weights.length - 1;
}

/** A standard normal draw (Box-Muller). */
const gaussian = (rng: () => number) => Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());

function drawFloat(m: Mixture, low: number, high: number, rng: () => number): number {
  const k = pick(m.weights, rng());
  // Rejection from the truncated kernel: its mean lies in [low, high] and its width is at most the range, so at
  // least a third of the draws land inside.
  for (let attempt = 0; attempt < 1000; attempt++) {
    const x = m.mus[k] + m.sigmas[k] * gaussian(rng);
    if (x >= low && x <= high) return x;
  }
  return Math.min(high, Math.max(low, m.mus[k]));
}

function sampleFloat(
  spec: { low: number; high: number },
  below: readonly number[],
  above: readonly number[],
  candidates: number,
  rng: () => number,
): number {
  const l = parzen(below, spec.low, spec.high, (n) => new Array<number>(n).fill(1));
  const g = parzen(above, spec.low, spec.high, tpeWeights);
  let best = NaN;
  let bestScore = -Infinity;
  for (let c = 0; c < candidates; c++) {
    const x = drawFloat(l, spec.low, spec.high, rng);
    const score = logDensity(l, x, spec.low, spec.high) - logDensity(g, x, spec.low, spec.high);
    if (score > bestScore) [best, bestScore] = [x, score];
  }
  return best;
}

/**
 * Optuna's categorical estimator: each observation a kernel with its choice's mass raised by 1 over a uniform
 * floor of prior_weight / n_kernels, plus a uniform prior kernel.
 */
function categoricalProbabilities(
  choices: readonly ParamValue[],
  observed: readonly ParamValue[],
  weightsOf: (n: number) => number[],
): number[] {
  const nKernels = observed.length + 1;
  const weights = [...weightsOf(observed.length), 1];
  const total = weights.reduce((a, b) => a + b, 0);
  const probs = new Array<number>(choices.length).fill(0);
  for (let k = 0; k < nKernels; k++) {
    const row = new Array<number>(choices.length).fill(1 / nKernels);
    if (k < observed.length) {
      const index = choices.indexOf(observed[k]);
      if (index < 0) throw new Error(`a trial holds ${JSON.stringify(observed[k])}, not one of the choices ${JSON.stringify(choices)}`);
      row[index] += 1;
    }
    const rowSum = row.reduce((a, b) => a + b, 0);
    for (let c = 0; c < choices.length; c++) probs[c] += (weights[k] / total) * (row[c] / rowSum);
  }
  return probs;
}

function sampleCategorical(
  choices: readonly ParamValue[],
  below: readonly ParamValue[],
  above: readonly ParamValue[],
  candidates: number,
  rng: () => number,
): ParamValue {
  const l = categoricalProbabilities(choices, below, (n) => new Array<number>(n).fill(1));
  const g = categoricalProbabilities(choices, above, tpeWeights);
  let best = 0;
  let bestScore = -Infinity;
  for (let c = 0; c < candidates; c++) {
    const index = pick(l, rng());
    const score = Math.log(l[index]) - Math.log(g[index]);
    if (score > bestScore) [best, bestScore] = [index, score];
  }
  return choices[best];
}

/**
 * log l(x) and log g(x) of one parameter at `points`, from the split of `history` that the next trial would use:
 * the two densities whose difference the sampler maximises (checked against Optuna's in test/search.test.ts).
 */
export function parzenLogDensities(
  space: SearchSpace,
  history: readonly CompletedTrial[],
  name: string,
  points: readonly ParamValue[],
): { below: number[]; above: number[] } {
  checkSpace(space);
  const spec = space[name];
  if (!spec) throw new Error(`search space: no parameter ${name}`);
  const [below, above] = splitHistory(history);
  const observed = (group: readonly CompletedTrial[]) => group.map((t) => t.params[name]);
  if (spec.kind === "float") {
    const l = parzen(observed(below) as number[], spec.low, spec.high, (n) => new Array<number>(n).fill(1));
    const g = parzen(observed(above) as number[], spec.low, spec.high, tpeWeights);
    return {
      below: points.map((x) => logDensity(l, x as number, spec.low, spec.high)),
      above: points.map((x) => logDensity(g, x as number, spec.low, spec.high)),
    };
  }
  const l = categoricalProbabilities(spec.choices, observed(below), (n) => new Array<number>(n).fill(1));
  const g = categoricalProbabilities(spec.choices, observed(above), tpeWeights);
  return {
    below: points.map((c) => Math.log(l[spec.choices.indexOf(c)])),
    above: points.map((c) => Math.log(g[spec.choices.indexOf(c)])),
  };
}
