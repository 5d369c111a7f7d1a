// Which edit to make, from a directions file's contents and the variants asked for: the direction (by key, or
// at a fractional index; projected against the harmless mean where asked) and the edit plan's options
// (biprojection reads each layer's harmless mean at resid_pre). `apply`, `run` and the notebooks share it.
import { z } from "zod";
import { chooseDirection, directionKey, harmlessMeansAt, type ChosenDirection, type Direction } from "./directions.ts";
import type { OrthogonalizeOptions } from "./orthogonalize.ts";

/** The edit options as a user gives them: biprojection as a switch (the means come from the directions). */
export interface EditVariants extends Omit<OrthogonalizeOptions, "biprojectAgainst"> {
  /** grimjim's projected direction: r without its component along the harmless mean measured with it. */
  projectAgainstHarmless?: boolean;
  /** grimjim's biprojection: each layer edited against r projected against that layer's harmless mean at resid_pre. */
  biproject?: boolean;
}

export interface ResolvedEdit {
  direction: ChosenDirection;
  orthogonalize: OrthogonalizeOptions;
  /** What an export records of the choice (abliterate.json), beside the plan's own record. */
  record: Record<string, unknown>;
}

export function resolveEdit(
  directions: readonly Direction[],
  choice: { key?: string; index?: number },
  variants: EditVariants,
  nLayers: number,
  source: string,
): ResolvedEdit {
  const direction = chooseDirection(directions, { ...choice, projected: variants.projectAgainstHarmless }, source);
  const { projectAgainstHarmless, biproject, ...rest } = variants;
  const orthogonalize: OrthogonalizeOptions = {
    ...rest,
    biprojectAgainst: biproject ? harmlessMeansAt(directions, direction.tokenOffset, nLayers, source) : undefined,
  };
  const record = {
    direction: direction.label,
    hook: direction.hook,
    tokenOffset: direction.tokenOffset,
    ...(choice.index !== undefined
      ? { directionIndex: choice.index }
      : { directionKey: directionKey({ ...direction, layer: layerOf(direction.label) }) }),
    projectedAgainstHarmless: projectAgainstHarmless ?? false,
  };
  return { direction, orthogonalize, record };
}

/** The layer a direction key names (blocks.L.hook_...@offset). */
const layerOf = (key: string) => Number(/^blocks\.(\d+)\./.exec(key)?.[1] ?? NaN);

const kernelSchema = z.object({
  maxWeight: z.number(),
  maxWeightPosition: z.number(),
  minWeight: z.number(),
  minWeightDistance: z.number(),
});

/** What an export's abliterate.json must hold for its edit to be made again (its other fields are ignored). */
const recordSchema = z.object({
  directionsFile: z.string().optional(),
  directionKey: z.string().optional(),
  directionIndex: z.number().optional(),
  hook: z.enum(["resid_pre", "resid_mid", "resid_post"]).optional(),
  tokenOffset: z.number().int().negative().optional(),
  projectedAgainstHarmless: z.boolean().optional(),
  scale: z.number(),
  layers: z.tuple([z.number().int(), z.number().int()]).nullable(),
  skipEmbedding: z.boolean(),
  postNorms: z.string().nullable().optional(),
  kernels: z.object({ attention: kernelSchema.optional(), mlp: kernelSchema.optional() }).optional(),
  normPreserving: z.boolean().optional(),
  biprojected: z.boolean().optional(),
});

/**
 * The direction choice and the variants an export's abliterate.json records, so that `apply --reproduce` (or
 * `resolveEdit`) makes the same edit again; `file` names the record in errors.
 */
export function editFromRecord(
  record: unknown,
  file: string,
): { directionsFile?: string; choice: { key?: string; index?: number }; variants: EditVariants } {
  const parsed = recordSchema.safeParse(record);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`${file}: not an edit record written by abliterate: ${issue?.path.join(".") || "(root)"}: ${issue?.message}`);
  }
  const r = parsed.data;
  if (r.directionKey === undefined && r.directionIndex === undefined)
    throw new Error(`${file}: records neither directionKey nor directionIndex (written before edits were recorded in full?)`);
  const where = r.hook && r.tokenOffset !== undefined ? directionKey({ layer: 0, hook: r.hook, tokenOffset: r.tokenOffset }) : undefined;
  return {
    directionsFile: r.directionsFile,
    // A fractional index is taken at the recorded hook and offset: any key of them carries both.
    choice: r.directionIndex !== undefined ? { index: r.directionIndex, key: where } : { key: r.directionKey },
    variants: {
      scale: r.scale,
      layers: r.layers ?? undefined,
      skipEmbedding: r.skipEmbedding,
      naive: r.postNorms === "ignored (naive edit)",
      kernels: r.kernels ? { attention: r.kernels.attention, mlp: r.kernels.mlp } : undefined,
      normPreserving: r.normPreserving,
      biproject: r.biprojected,
      projectAgainstHarmless: r.projectedAgainstHarmless,
    },
  };
}
