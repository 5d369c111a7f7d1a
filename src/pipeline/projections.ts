// Where prompts fall along a direction: the scalar projection x . r of each prompt's activation at the
// direction's own hook point and token offset (stage 7's picture of what the direction separates).
import { actName } from "../hooks.ts";
import type { HookedModel } from "../hooked-model.ts";
import { dot } from "../projection.ts";
import { promptBatches, type Prompts } from "./batches.ts";
import type { UsableDirection } from "./directions.ts";

export function projectionsOn(model: HookedModel, prompts: Prompts, direction: UsableDirection, options: { batchSize?: number } = {}): number[] {
  const name = actName(direction.hook, direction.layer);
  const out: number[] = [];
  for (const { batch } of promptBatches(model, prompts, options.batchSize)) {
    const { logits, cache } = model.runWithCache(batch, { namesFilter: [name], cachePositions: [direction.tokenOffset], logits: "last" });
    logits.dispose();
    const values = cache.get(name).dataSync(); // [batch, 1, d_model]
    cache.dispose();
    for (let b = 0; b < batch.inputIds.length; b++) out.push(dot(values.subarray(b * model.dModel, (b + 1) * model.dModel), direction.unit));
  }
  return out;
}
