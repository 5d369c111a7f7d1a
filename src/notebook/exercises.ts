// Exercises in the notebooks: the learner writes the core of a stage, a check compares it with the
// package's implementation on real values and names the likely mistake. The solutions live in
// solutions.ts; ABLITERATE_SOLUTIONS=1 makes every exercise use its solution (how `npm run notebooks`, the
// tests and CI execute the notebooks end to end).
import { dpoLoss } from "../heal/dpo.ts";
import { SOLUTIONS } from "./solutions.ts";

export const SOLUTIONS_SWITCH = "ABLITERATE_SOLUTIONS";

export class ExerciseNotWritten extends Error {
  constructor(name: string) {
    super(`exercise ${name}: not written yet; replace the throw with your code (or run with ${SOLUTIONS_SWITCH}=1 to use the solution)`);
    this.name = "ExerciseNotWritten";
  }
}

/** The learner's function, or with ABLITERATE_SOLUTIONS=1 the solution. */
export function exercise<K extends keyof typeof SOLUTIONS>(name: K, learner: (typeof SOLUTIONS)[K]): (typeof SOLUTIONS)[K] {
  return process.env[SOLUTIONS_SWITCH] === "1" ? SOLUTIONS[name] : learner;
}

/**
 * Check a DPO loss written by the learner against the package's on real log-probabilities (one entry per
 * pair); throws with a hint naming the likely mistake, returns the largest difference when it agrees.
 */
export function checkDpoLoss(
  learner: (policyChosen: number, policyRejected: number, referenceChosen: number, referenceRejected: number, beta: number) => number,
  policy: { chosen: ArrayLike<number>; rejected: ArrayLike<number> },
  reference: { chosen: ArrayLike<number>; rejected: ArrayLike<number> },
  beta: number,
): number {
  let worst = 0;
  for (let i = 0; i < policy.chosen.length; i++) {
    const args = [policy.chosen[i], policy.rejected[i], reference.chosen[i], reference.rejected[i], beta] as const;
    const got = learner(...args);
    const want = dpoLoss(...args);
    const gap = Math.abs(got - want);
    if (gap <= 1e-9 * Math.max(1, Math.abs(want))) {
      worst = Math.max(worst, gap);
      continue;
    }
    const [pc, pr, rc, rr] = args;
    const hints: [number, string][] = [
      [dpoLoss(pr, pc, rr, rc, beta), "the chosen and rejected answers are swapped: the margin is (chosen log-ratio) - (rejected log-ratio)"],
      [dpoLoss(pc, pr, 0, 0, beta), "the reference's log-probabilities are missing: each log-ratio is log pi(y|x) - log ref(y|x)"],
      [dpoLoss(pc, pr, rc, rr, 1), "beta is missing: the margin is multiplied by beta before the sigmoid"],
      [-dpoLoss(pc, pr, rc, rr, beta), "the sign is flipped: the loss is minus log sigmoid, a positive number"],
      [1 / (1 + Math.exp(-beta * (pc - rc - (pr - rr)))), "that is sigmoid(margin); the loss is -log sigmoid(margin)"],
    ];
    const hint = hints.find(([value]) => Math.abs(value - got) <= 1e-9 * Math.max(1, Math.abs(value)))?.[1] ?? "compare with -log(1 / (1 + exp(-beta * ((pc - rc) - (pr - rr)))))";
    throw new Error(`pair ${i}: your loss is ${got}, the package's ${want}. Hint: ${hint}.`);
  }
  return worst;
}
