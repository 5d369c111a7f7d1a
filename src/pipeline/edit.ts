// Which edit to make, from a directions file's contents and the variants asked for: the direction (by key, or
// at a fractional index; projected against the harmless mean where asked) and the edit plan's options
// (biprojection reads each layer's harmless mean at resid_pre). `apply`, `run` and the notebooks share it.
import { chooseDirection, harmlessMeansAt, type ChosenDirection, type Direction } from "./directions.ts";
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
    ...(choice.index !== undefined ? { directionIndex: choice.index } : {}),
    projectedAgainstHarmless: projectAgainstHarmless ?? false,
  };
  return { direction, orthogonalize, record };
}
