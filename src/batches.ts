// Prompts in batches: every stage that runs the model on a list of prompts walks it through here.
import type { HookedModel } from "./hooked-model.ts";
import { padLeft, type Batch } from "./tokenizer.ts";

/** Instructions (chat-templated with the model's template) or token-id sequences used as they are. */
export type Prompts = readonly string[] | readonly number[][];

/** Left-padded batches of at most `batchSize` prompts, with the index of each batch's first prompt. */
export function* promptBatches(
  model: HookedModel,
  prompts: Prompts,
  batchSize = 8,
  system?: string,
): Generator<{ start: number; batch: Batch }> {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batch size must be a positive integer, got ${batchSize}`);
  for (let start = 0; start < prompts.length; start += batchSize) {
    const items = prompts.slice(start, start + batchSize);
    const batch =
      typeof items[0] === "string" ? model.tokenizeInstructions(items as string[], system) : padLeft(items as number[][], model.padId);
    yield { start, batch };
  }
}
