// config.json's model_type -> architecture: the one place that knows which types exist (as in
// mlx-lm's remap table). Adding an architecture means adding its file and a line here.
import type { Architecture } from "./architecture.ts";
import { gemma } from "./gemma.ts";
import { gemma2 } from "./gemma2.ts";
import { gemma3, gemma3Text } from "./gemma3.ts";
import { llama, mistral } from "./llama.ts";
import { phi3 } from "./phi3.ts";
import { qwen2 } from "./qwen2.ts";
import { qwen3 } from "./qwen3.ts";

export const ARCHITECTURES: Readonly<Record<string, Architecture>> = Object.fromEntries(
  [llama, mistral, qwen2, qwen3, gemma, gemma2, gemma3Text, gemma3, phi3].map((a) => [a.modelType, a]),
);

export function architectureOf(modelType: string): Architecture {
  if (!Object.hasOwn(ARCHITECTURES, modelType))
    throw new Error(`model_type "${modelType}" has no architecture (supported: ` + `${Object.keys(ARCHITECTURES).join(", ")})`);
  return ARCHITECTURES[modelType];
}

export type { Architecture } from "./architecture.ts";
