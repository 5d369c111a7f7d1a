// Pareto dominance for objectives that are all minimised (refusal rate, KL): the front a user picks a trial
// from, the non-dominated sorting the TPE sampler splits its history with, and the 2-D hypervolume both use.

/** Whether `a` dominates `b`: no worse in every objective and better in at least one. */
export function dominates(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) throw new Error(`dominates: ${a.length} objectives against ${b.length}`);
  let better = false;
  for (let i = 0; i < a.length; i++) {
    if (a[i] > b[i]) return false;
    if (a[i] < b[i]) better = true;
  }
  return better;
}

function checkPoints(points: readonly (readonly number[])[], what: string): void {
  points.forEach((p, i) => {
    if (p.length !== points[0].length) throw new Error(`${what}: point ${i} has ${p.length} objectives, point 0 has ${points[0].length}`);
    if (!p.every(Number.isFinite)) throw new Error(`${what}: point ${i} is not finite: [${p.join(", ")}]`);
  });
}

/**
 * Indices of the non-dominated points, in the order given. Equal points are all kept (neither dominates the
 * other): two trials with the same measures are both on the front.
 */
export function paretoFront(points: readonly (readonly number[])[]): number[] {
  checkPoints(points, "paretoFront");
  return points.flatMap((p, i) => (points.some((q, j) => j !== i && dominates(q, p)) ? [] : [i]));
}

/**
 * Non-dominated sorting (Deb et al. 2002): rank 0 is the front, rank 1 the front of what is left, and so on.
 * Returns each point's rank.
 */
export function nonDominatedRanks(points: readonly (readonly number[])[]): number[] {
  checkPoints(points, "nonDominatedRanks");
  const ranks = new Array<number>(points.length).fill(-1);
  let left = points.map((_, i) => i);
  for (let rank = 0; left.length > 0; rank++) {
    const front = left.filter((i) => !left.some((j) => j !== i && dominates(points[j], points[i])));
    for (const i of front) ranks[i] = rank;
    left = left.filter((i) => ranks[i] === -1);
  }
  return ranks;
}

/**
 * The area dominated by 2-D points and bounded by `reference` (a point worse than all of them in both
 * objectives): the measure of a front that the sampler's split and the tests use.
 */
export function hypervolume2d(points: readonly (readonly number[])[], reference: readonly [number, number]): number {
  checkPoints(points, "hypervolume2d");
  const inside = points.filter((p) => p.length === 2 && p[0] < reference[0] && p[1] < reference[1]);
  if (points.some((p) => p.length !== 2)) throw new Error(`hypervolume2d: expected points of 2 objectives`);
  const sorted = [...inside].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let area = 0;
  let ceiling = reference[1];
  for (const [x, y] of sorted) {
    if (y >= ceiling) continue;
    area += (reference[0] - x) * (ceiling - y);
    ceiling = y;
  }
  return area;
}
