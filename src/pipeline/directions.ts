// Stage 3: the refusal direction of each layer, hook point and position is
// mean(harmful) - mean(harmless); its norm is what the per-layer plot shows.
import { actName, type ResidHook } from "../hooks.ts";
import { SafetensorsFile } from "../safetensors/read.ts";
import { floatTensor, writeSafetensors } from "../safetensors/write.ts";
import type { MeanActivations } from "./activations.ts";

export interface Direction {
  layer: number;
  hook: ResidHook;
  /** Position from the end (-1: last token). */
  position: number;
  /** mean(harmful) - mean(harmless), unnormalised. */
  raw: Float64Array;
  norm: number;
  /** raw / norm (all zeros when the means are identical; such a direction cannot be used). */
  unit: Float64Array;
}

export const directionKey = (d: Pick<Direction, "layer" | "hook" | "position">) => `${actName(d.hook, d.layer)}@${d.position}`;

export interface DirectionOptions {
  /**
   * "Projected" abliteration: remove from each direction its component along the harmless mean,
   * so that ablating it leaves the harmless activations' typical direction alone.
   */
  projectOutHarmlessMean?: boolean;
}

export function computeDirections(harmful: MeanActivations, harmless: MeanActivations, options: DirectionOptions = {}): Direction[] {
  if (harmful.dModel !== harmless.dModel || harmful.nLayers !== harmless.nLayers) {
    throw new Error(`harmful activations are [${harmful.nLayers} layers, d_model ${harmful.dModel}] but harmless are [${harmless.nLayers}, ${harmless.dModel}]: were they collected with different models?`);
  }
  if (harmful.positions.join() !== harmless.positions.join()) throw new Error(`harmful positions [${harmful.positions}] differ from harmless positions [${harmless.positions}]`);
  const out: Direction[] = [];
  for (let layer = 0; layer < harmful.nLayers; layer++) {
    for (const hook of harmful.hooks) {
      const name = actName(hook, layer);
      const a = harmful.means.get(name);
      const b = harmless.means.get(name);
      if (!a || !b) throw new Error(`no mean activations for ${name} in both sets`);
      harmful.positions.forEach((position, p) => {
        const raw = a[p].map((x, i) => x - b[p][i]);
        if (options.projectOutHarmlessMean) {
          const m = b[p];
          const mm = dot(m, m);
          if (mm > 0) {
            const c = dot(raw, m) / mm;
            for (let i = 0; i < raw.length; i++) raw[i] -= c * m[i];
          }
        }
        const norm = Math.sqrt(dot(raw, raw));
        const unit = norm > 0 ? raw.map((x) => x / norm) : new Float64Array(raw.length);
        out.push({ layer, hook, position, raw, norm, unit });
      });
    }
  }
  return out;
}

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

export function cosineSimilarity(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = Math.sqrt(dot(a, a) * dot(b, b));
  return n === 0 ? 0 : dot(a, b) / n;
}

/** Save directions (raw, unnormalised) as safetensors; layer, hook and position go in the metadata. */
export async function saveDirections(path: string, directions: Direction[], metadata: Record<string, string> = {}, options: { overwrite?: boolean } = {}): Promise<void> {
  const index = directions.map((d) => ({ key: directionKey(d), layer: d.layer, hook: d.hook, position: d.position, norm: d.norm }));
  await writeSafetensors(
    path,
    directions.map((d) => floatTensor(directionKey(d), Float32Array.from(d.raw), [d.raw.length])),
    { ...metadata, format: "abliterate-directions", directions: JSON.stringify(index) },
    options,
  );
}

export async function loadDirections(path: string): Promise<Direction[]> {
  const file = await SafetensorsFile.open(path);
  try {
    const meta = file.header.metadata;
    if (meta.format !== "abliterate-directions" || !meta.directions) throw new Error(`${path}: not a directions file written by abliterate (metadata.format is ${JSON.stringify(meta.format)})`);
    const index = JSON.parse(meta.directions) as { key: string; layer: number; hook: ResidHook; position: number }[];
    const out: Direction[] = [];
    for (const entry of index) {
      const raw = Float64Array.from(await file.readFloat32(entry.key));
      const norm = Math.sqrt(dot(raw, raw));
      out.push({ layer: entry.layer, hook: entry.hook, position: entry.position, raw, norm, unit: raw.map((x) => (norm > 0 ? x / norm : 0)) });
    }
    return out;
  } finally {
    await file.close();
  }
}
