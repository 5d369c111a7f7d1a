// Two edits side by side on one model, as a notebook compares the variants: each is made in place, measured
// (refusal, harmless KL and answers kept against the original) and undone, so no second copy of the model is
// held; only the tensors an edit changes are saved while it is measured.
import type { HookedModel } from "../hooked-model.ts";
import { generateCompletions, lastPositionLogits } from "../generation.ts";
import type { UnitVector } from "../projection.ts";
import { measure, type MeasureOptions, type Measures } from "./evaluate.ts";
import { heldValues, orthogonalizeModel, replaceHeld, type OrthogonalizeOptions } from "./orthogonalize.ts";

export interface EditUnderTest {
  label: string;
  unit: UnitVector;
  options?: OrthogonalizeOptions;
}

export interface EditComparison extends Measures {
  label: string;
  /** Tensors the edit changes. */
  edited: number;
  /** Largest |W' - W| over every edited tensor. */
  maxWeightChange: number;
}

/**
 * Measure edits of `model` one after the other on the same test instructions: each is applied in place
 * (orthogonalizeModel), measured against the original's harmless logits and answers, then undone. A tied model
 * is left untied (its unembedding a copy of the original embedding), which changes none of its outputs.
 */
export async function compareEdits(
  model: HookedModel,
  edits: readonly EditUnderTest[],
  test: { harmful: readonly string[]; harmless: readonly string[] },
  options: Omit<MeasureOptions, "original"> = {},
): Promise<EditComparison[]> {
  const { onProgress, ...generation } = options;
  const original = {
    logits: lastPositionLogits(model, test.harmless, generation),
    answers: await generateCompletions(model, test.harmless, {
      ...generation,
      onProgress: (d, t) => onProgress?.("generations (original, harmless)", d, t),
    }),
  };
  const results: EditComparison[] = [];
  for (const edit of edits) {
    results.push(
      await withEditInPlace(model, edit.unit, edit.options, async ({ edited, maxWeightChange }) => ({
        label: edit.label,
        edited: edited.length,
        maxWeightChange: maxWeightChange(),
        ...(await measure(model, test, { ...options, original })),
      })),
    );
  }
  return results;
}

/**
 * Run `fn` with `model` edited in place (orthogonalizeModel), then restore every tensor the edit changed, whatever
 * `fn` does: only the changed tensors are copied, never the model. `fn` is told which tensors changed and can ask
 * for the largest |W' - W| among them.
 */
export async function withEditInPlace<T>(
  model: HookedModel,
  unit: UnitVector,
  options: OrthogonalizeOptions | undefined,
  fn: (edit: { edited: readonly string[]; maxWeightChange: () => number }) => Promise<T>,
): Promise<T> {
  const saved = new Map<string, Float32Array>();
  try {
    const edited = orthogonalizeModel(model, unit, options, { onBefore: (key, values) => saved.set(key, values.slice()) });
    const maxWeightChange = () => {
      let max = 0;
      for (const key of edited) {
        const [after, before] = [heldValues(model, key), saved.get(key)!];
        for (let i = 0; i < after.length; i++) max = Math.max(max, Math.abs(after[i] - before[i]));
      }
      return max;
    };
    return await fn({ edited, maxWeightChange });
  } finally {
    for (const [key, values] of saved) replaceHeld(model, key, () => values);
  }
}
