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
  /** The mean activations it is the difference of (for projected and biprojected edits; absent in older files). */
  harmfulMean?: Float64Array;
  harmlessMean?: Float64Array;
}

/** A direction that can be used: its means differ. */
export type UsableDirection = Direction & { unit: UnitVector };

export const directionKey = (d: Pick<Direction, "layer" | "hook" | "tokenOffset">) => `${actName(d.hook, d.layer)}@${d.tokenOffset}`;

/** The tensor a directions file keeps a direction's harmful or harmless mean activation under. */
const meanKey = (set: "harmful" | "harmless", d: Pick<Direction, "layer" | "hook" | "tokenOffset">) => `${set}_mean/${directionKey(d)}`;

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
        out.push({
          ...makeDirection(layer, hook, tokenOffset, raw),
          harmfulMean: Float64Array.from(a[p]),
          harmlessMean: Float64Array.from(b[p]),
        });
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
  const means = (d: Direction) =>
    (["harmful", "harmless"] as const).flatMap((set) => {
      const mean = set === "harmful" ? d.harmfulMean : d.harmlessMean;
      return mean ? [floatTensor(meanKey(set, d), Float32Array.from(mean), [mean.length])] : [];
    });
  await writeSafetensors(
    path,
    directions.flatMap((d) => [floatTensor(directionKey(d), Float32Array.from(d.raw), [d.raw.length]), ...means(d)]),
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
    const names = new Set(file.names);
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
      const direction = makeDirection(entry.layer, entry.hook, entry.tokenOffset, Float64Array.from(values), path);
      for (const set of ["harmful", "harmless"] as const) {
        const key = meanKey(set, entry);
        if (!names.has(key)) continue;
        const mean = await file.readFloat32(key);
        if (mean.length !== values.length)
          throw new Error(`${path}: ${key} has ${mean.length} values, but direction ${entry.key} has ${values.length}`);
        direction[set === "harmful" ? "harmfulMean" : "harmlessMean"] = Float64Array.from(mean);
      }
      out.push(direction);
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

/** A direction chosen for an edit: its unit vector, what it is, and the harmless mean measured with it (when the file has it). */
export interface ChosenDirection {
  unit: UnitVector;
  label: string;
  hook: ResidHook;
  tokenOffset: number;
  harmlessMean?: Float64Array;
}

/**
 * heretic's fractional direction index: for x in [0, L-1] at one hook point and token offset,
 * r(x) = unit((1 - f) r_floor(x) + f r_floor(x)+1) with f = x - floor(x) and r_l the unit direction of layer l.
 * A whole x gives that layer's direction itself. The harmless mean is interpolated alike.
 */
export function directionAtIndex(
  directions: readonly Direction[],
  index: number,
  where: { hook: ResidHook; tokenOffset: number },
  source: string,
): ChosenDirection {
  const at = (layer: number) => {
    const found = directions.find((d) => d.layer === layer && d.hook === where.hook && d.tokenOffset === where.tokenOffset);
    if (!found) throw new Error(`${source} has no direction ${directionKey({ layer, ...where })}, needed for direction index ${index}`);
    return usable(found);
  };
  const layers = directions.filter((d) => d.hook === where.hook && d.tokenOffset === where.tokenOffset).map((d) => d.layer);
  if (layers.length === 0) throw new Error(`${source} has no directions at ${where.hook}@${where.tokenOffset}`);
  const last = Math.max(...layers);
  if (!(Number.isFinite(index) && index >= 0 && index <= last))
    throw new Error(
      `direction index ${index} is not within [0, ${last}], the layers ${source} holds at ${where.hook}@${where.tokenOffset}`,
    );
  const low = Math.floor(index);
  const f = index - low;
  const label = Number.isInteger(index)
    ? directionKey({ layer: index, ...where })
    : `${where.hook}@${where.tokenOffset} at direction index ${index}`;
  const a = at(low);
  if (f === 0) return { unit: a.unit, label, ...where, harmlessMean: a.harmlessMean };
  const b = at(low + 1);
  const mix = (x: ArrayLike<number>, y: ArrayLike<number>) => Float64Array.from(x, (v, i) => (1 - f) * v + f * y[i]);
  return {
    unit: unitVector(mix(a.unit, b.unit), `the direction at index ${index}`),
    label,
    ...where,
    harmlessMean: a.harmlessMean && b.harmlessMean ? mix(a.harmlessMean, b.harmlessMean) : undefined,
  };
}

/**
 * The direction an edit uses: the one saved under `key` (one alone needs none), or with `index` the fractional
 * direction index at the hook and token offset of `key` (default resid_pre@-1); with `projected`, grimjim's
 * projected direction unit(r - (r.h) h), h the unit harmless mean measured with it.
 */
export function chooseDirection(
  directions: readonly Direction[],
  choice: { key?: string; index?: number; projected?: boolean },
  source: string,
): ChosenDirection {
  let chosen: ChosenDirection;
  if (choice.index !== undefined) {
    // The key only says which hook and token offset: its own direction may be unusable (layer 0's resid_pre is
    // the embedding, the same for both sets).
    const where = choice.key ? directions.find((d) => directionKey(d) === choice.key) : { hook: "resid_pre" as const, tokenOffset: -1 };
    if (!where) throw new Error(`${source} has no direction ${choice.key}`);
    chosen = directionAtIndex(directions, choice.index, { hook: where.hook, tokenOffset: where.tokenOffset }, source);
  } else {
    const d = pickDirection(directions, choice.key, source);
    chosen = { unit: d.unit, label: directionKey(d), hook: d.hook, tokenOffset: d.tokenOffset, harmlessMean: d.harmlessMean };
  }
  if (!choice.projected) return chosen;
  if (!chosen.harmlessMean)
    throw new Error(
      `${source} holds no harmless mean for ${chosen.label}; the projected direction needs it: compute the directions again with ` +
        `this version (abliterate directions)`,
    );
  const h = unitVector(chosen.harmlessMean, `the harmless mean at ${chosen.label}`);
  return {
    ...chosen,
    unit: unitVector(projectRowsArray(Float64Array.from(chosen.unit), h), `${chosen.label} projected`),
    label: `${chosen.label}, projected against the harmless mean`,
  };
}

/**
 * The harmless mean activation at resid_pre of every layer, at one token offset, as biprojection needs; a
 * clear error when the file was written before means were saved.
 */
export function harmlessMeansAt(directions: readonly Direction[], tokenOffset: number, nLayers: number, source: string): Float64Array[] {
  return Array.from({ length: nLayers }, (_, layer) => {
    const found = directions.find((d) => d.layer === layer && d.hook === "resid_pre" && d.tokenOffset === tokenOffset);
    if (!found?.harmlessMean)
      throw new Error(
        `${source} holds no harmless mean for ${directionKey({ layer, hook: "resid_pre", tokenOffset })}; biprojection needs the ` +
          `harmless mean at resid_pre of every layer: compute the directions again with this version (abliterate directions)`,
      );
    return found.harmlessMean;
  });
}
