// Random-weight checkpoints of any supported shape, for benchmarks and tests that need a model
// bigger than the reference fixtures.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { architectureFor, parseConfig, type ModelConfig } from "../src/config.ts";
import { expectedTensors } from "../src/models/tensors.ts";
import { makeRng } from "../src/sampling.ts";
import type { FloatDtype } from "../src/safetensors/dtype.ts";
import { floatTensor, planShards, writeCheckpointWeights } from "../src/safetensors/write.ts";

/** Write config.json and random weights (normal, std `scale`) into `dir`. Returns the parsed config. */
export async function writeRandomCheckpoint(
  dir: string,
  configJson: Record<string, unknown>,
  options: { dtype?: FloatDtype; seed?: number; scale?: number; maxShardBytes?: number } = {},
): Promise<ModelConfig> {
  const config = parseConfig(configJson);
  const rng = makeRng(options.seed ?? 1);
  const scale = options.scale ?? 0.02;
  const dtype = options.dtype ?? "F32";
  await mkdir(dir, { recursive: true });
  await writeFile(
    join(dir, "config.json"),
    JSON.stringify({ ...configJson, torch_dtype: dtype === "F32" ? "float32" : dtype === "BF16" ? "bfloat16" : "float16" }, null, 2),
  );
  const tensors = expectedTensors(architectureFor(config), config).map((e) => {
    const count = e.shape.reduce((a, b) => a * b, 1);
    const isNorm = e.shape.length === 1 && e.key.endsWith("norm.weight");
    return {
      ...floatTensor(e.key, new Float32Array(0), [0], dtype),
      shape: e.shape,
      // Values are produced when the tensor is written, so memory holds one tensor at a time.
      bytes: () => {
        const values = new Float32Array(count);
        for (let i = 0; i < count; i++) values[i] = isNorm ? 1 : scale * gaussian(rng);
        return floatTensor(e.key, values, e.shape, dtype).bytes();
      },
    };
  });
  await writeCheckpointWeights(dir, planShards(tensors, options.maxShardBytes ?? Infinity));
  return config;
}

function gaussian(rng: () => number): number {
  // Box-Muller
  const u = 1 - rng();
  const v = rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}
