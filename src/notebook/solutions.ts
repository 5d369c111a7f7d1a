// Solutions of the notebooks' exercises, out of sight of the learner (see exercises.ts).

export const SOLUTIONS = {
  /** Notebook 10: the DPO loss of one pair, -log sigmoid(beta * (chosen log-ratio - rejected log-ratio)). */
  dpoLoss(policyChosen: number, policyRejected: number, referenceChosen: number, referenceRejected: number, beta: number): number {
    const margin = beta * (policyChosen - referenceChosen - (policyRejected - referenceRejected));
    return Math.log(1 + Math.exp(-margin));
  },
};
