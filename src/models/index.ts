// model_type -> architecture, as in mlx-lm's remap table.
import type { ModelConfig } from "../config.ts";
import type { Architecture } from "./architecture.ts";
import { gemma } from "./gemma.ts";
import { llama } from "./llama.ts";

const ARCHITECTURES: Architecture[] = [llama, gemma];

export function architectureFor(config: ModelConfig): Architecture {
  const arch = ARCHITECTURES.find((a) => a.modelTypes.includes(config.model_type));
  if (!arch) throw new Error(`model_type "${config.model_type}" has no architecture (supported: ${ARCHITECTURES.flatMap((a) => a.modelTypes).join(", ")})`);
  return arch;
}

export type { Architecture } from "./architecture.ts";
