// Stage 3: the refusal direction of each layer, hook point and token offset is
// mean(harmful) - mean(harmless), normalised once here; its norm is what the per-layer plot shows.
import { actName, type ResidHook } from "../hooks.ts";
import { dot, projectRowsArray, unitVector, type UnitVector } from "../projection.ts";
import { SafetensorsFile } from "../safetensors/read.ts";
import { floatTensor, writeSafetensors } from "../safetensors/write.ts";
import { z } from "zod";
import type { MeanActivations } from "./activations.ts";

const directionIndexSchema = z.array(
  z.object({
    key: z.string(),
    layer: z.number().int().nonnegative(),
    hook: z.enum(["resid_pre", "resid_mid", "resid_post"]),
    tokenOffset: z.number().int().negative(),
  }),
);

export interface Direction {
  layer: number;
  hook: ResidHook;
  /** Token offset from the end of the prompt (-1: last token). */
  tokenOffset: number;
  /** mean(harmful) - mean(harmless), unnormalised. */
  raw: Float64Array;
  norm: number;
  /** raw / norm; undefined when the means are identical (such a direction cannot be used). */
  unit?: UnitVector;
}

/** A direction that can be used: its means differ. */
export type UsableDirection = Direction & { unit: UnitVector };

export const directionKey = (d: Pick<Direction, "layer" | "hook" | "tokenOffset">) => `${actName(d.hook, d.layer)}@${d.tokenOffset}`;

export interface DirectionOptions {
  /**
   * "Projected" abliteration: remove from each direction its component along the harmless mean,
   * so that ablating it leaves the harmless activations' typical direction alone.
   */
  projectOutHarmlessMean?: boolean;
}

function makeDirection(layer: number, hook: ResidHook, tokenOffset: number, raw: Float64Array, source?: string): Direction {
  const bad = raw.findIndex((x) => !Number.isFinite(x));
  if (bad >= 0)
    throw new Error(
      `${source ? `${source}: ` : ""}direction ${directionKey({ layer, hook, tokenOffset })} contains ${raw[bad]} at index ` +
        `${bad}${source ? "" : ": a mean activation overflowed"}`,
    );
  const norm = Math.sqrt(dot(raw, raw));
  return { layer, hook, tokenOffset, raw, norm, unit: norm > 0 && Number.isFinite(norm) ? unitVector(raw) : undefined };
}

export function computeDirections(harmful: MeanActivations, harmless: MeanActivations, options: DirectionOptions = {}): Direction[] {
  if (harmful.dModel !== harmless.dModel || harmful.nLayers !== harmless.nLayers) {
    throw new Error(
      `harmful activations are [${harmful.nLayers} layers, d_model ${harmful.dModel}] but harmless are [${harmless.nLayers}, ` +
        `${harmless.dModel}]: were they collected with different models?`,
    );
  }
  if (harmful.tokenOffsets.join() !== harmless.tokenOffsets.join())
    throw new Error(`harmful token offsets [${harmful.tokenOffsets}] differ from harmless token offsets [${harmless.tokenOffsets}]`);
  const out: Direction[] = [];
  for (let layer = 0; layer < harmful.nLayers; layer++) {
    for (const hook of harmful.hooks) {
      const name = actName(hook, layer);
      const a = harmful.means.get(name);
      const b = harmless.means.get(name);
      if (!a || !b) throw new Error(`no mean activations for ${name} in both sets`);
      harmful.tokenOffsets.forEach((tokenOffset, p) => {
        let raw = a[p].map((x, i) => x - b[p][i]);
        if (options.projectOutHarmlessMean && dot(b[p], b[p]) > 0)
          raw = projectRowsArray(raw, unitVector(b[p], `harmless mean at ${name}`));
        out.push(makeDirection(layer, hook, tokenOffset, raw));
      });
    }
  }
  return out;
}

/** The directions that can be used (those whose means differ). */
export function usableDirections(directions: readonly Direction[]): UsableDirection[] {
  return directions.filter((d): d is UsableDirection => d.unit !== undefined);
}

/** The direction, checked usable: a clear error names it when its means were identical. */
export function usable(direction: Direction): UsableDirection {
  if (!direction.unit)
    throw new Error(
      `direction ${directionKey(direction)} is all zeros: the harmful and harmless means are identical there, so there is no ` +
        `direction to remove`,
    );
  return direction as UsableDirection;
}

export function cosineSimilarity(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = Math.sqrt(dot(a, a) * dot(b, b));
  return n === 0 ? 0 : dot(a, b) / n;
}

/** Save directions (raw, unnormalised) as safetensors; layer, hook and token offset go in the metadata. */
export async function saveDirections(
  path: string,
  directions: Direction[],
  metadata: Record<string, string> = {},
  options: { overwrite?: boolean } = {},
): Promise<void> {
  const index = directions.map((d) => ({ key: directionKey(d), layer: d.layer, hook: d.hook, tokenOffset: d.tokenOffset, norm: d.norm }));
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
    if (meta.format !== "abliterate-directions" || !meta.directions)
      throw new Error(`${path}: not a directions file written by abliterate (metadata.format is ${JSON.stringify(meta.format)})`);
    let json: unknown;
    try {
      json = JSON.parse(meta.directions);
    } catch {
      json = undefined;
    }
    const parsed = directionIndexSchema.safeParse(json);
    if (!parsed.success)
      throw new Error(
        `${path}: metadata "directions" is not a list of directions ({key, layer, hook, tokenOffset}): ` +
          `${parsed.error.issues[0]?.path.join(".") || "(root)"}: ${parsed.error.issues[0]?.message}`,
      );
    const out: Direction[] = [];
    const seen = new Set<string>();
    for (const [i, entry] of parsed.data.entries()) {
      // The key names the tensor; layer, hook and offset say what it is: they must agree, or a vector would be
      // used under another direction's name.
      const expected = directionKey(entry);
      if (entry.key !== expected)
        throw new Error(
          `${path}: metadata entry ${i} has key ${entry.key}, but its layer ${entry.layer}, hook ${entry.hook} and token offset ` +
            `${entry.tokenOffset} make ${expected}`,
        );
      if (seen.has(entry.key)) throw new Error(`${path}: direction ${entry.key} appears twice in the metadata`);
      seen.add(entry.key);
      const values = await file.readFloat32(entry.key);
      if (out.length > 0 && values.length !== out[0].raw.length)
        throw new Error(
          `${path}: direction ${entry.key} has ${values.length} values, but ${directionKey(out[0])} has ${out[0].raw.length}`,
        );
      out.push(makeDirection(entry.layer, entry.hook, entry.tokenOffset, Float64Array.from(values), path));
    }
    return out;
  } finally {
    await file.close();
  }
}

/** Directions read from `source` must fit the model they are used with: its width and its layers. */
export function checkDirectionsFit(directions: readonly Direction[], model: { nLayers: number; dModel: number }, source: string): void {
  for (const d of directions) {
    if (d.raw.length !== model.dModel)
      throw new Error(
        `${source}: direction ${directionKey(d)} has ${d.raw.length} values, but the model's d_model (hidden_size) is ${model.dModel}`,
      );
    if (d.layer >= model.nLayers)
      throw new Error(
        `${source}: direction ${directionKey(d)} is of layer ${d.layer}, ` +
          `but the model has ${model.nLayers} layers (0-${model.nLayers - 1})`,
      );
  }
}

/** The direction saved under `key` (e.g. blocks.3.hook_resid_pre@-1) in a list; one alone needs no key. */
export function pickDirection(directions: readonly Direction[], key: string | undefined, source: string): UsableDirection {
  if (!key) {
    if (directions.length === 1) return usable(directions[0]);
    throw new Error(`${source} holds ${directions.length} directions; choose one with a key (e.g. ${directionKey(directions[0])})`);
  }
  const found = directions.find((d) => directionKey(d) === key);
  if (!found)
    throw new Error(
      `${source} has no direction ${key} (it has ${directions.slice(0, 4).map(directionKey).join(", ")}${
        directions.length > 4 ? ", " + "..." : ""
      })`,
    );
  return usable(found);
}
