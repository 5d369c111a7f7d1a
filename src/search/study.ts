// A search's study file: JSON lines, the settings first, then the no-intervention point, then one line per
// finished trial, each appended and synced as it ends. A killed search leaves every finished trial on disk (and
// at most one cut line, which is dropped); resuming reads them back and, since the sampler's draws depend only
// on the seed, the trial number and the trials before, goes on exactly as an uninterrupted search would.
import { open, readFile, truncate } from "node:fs/promises";
import { z } from "zod";
import { writeFileAtomic } from "../files.ts";
import type { Params, SearchSpace } from "./tpe.ts";

export interface StudySettings {
  seed: number;
  startupTrials: number;
  candidates: number;
  space: SearchSpace;
  /** The directions file the trials' directions come from (as given), and the token offset they are taken at. */
  directionsFile: string;
  tokenOffset: number;
  /** The model searched (as given). */
  model: string;
  /** What a trial is measured on: prompt counts and a hash of the prompts themselves. */
  data: { harmful: number; harmless: number; sha256: string };
  /** detector: which refusal detector counted refusals (RefusalDetector.name; "paper" for the paper's substrings). */
  evaluation: { maxNewTokens: number; refusalSubstrings: readonly string[] | null; klTokens: number; detector: string };
}

export interface StudyHeader extends StudySettings {
  kind: "abliterate-study";
  version: 1;
}

/** What a trial (or the no-intervention point, or a reference edit) measured. */
export interface TrialMeasures {
  /** Share of the harmful prompts answered with a refusal. */
  refusal: number;
  /** Mean KL(original || edited) over the harmless prompts' first answer tokens. */
  kl: number;
}

export interface TrialRecord extends TrialMeasures {
  trial: number;
  params: Params;
  /** Whether the trial ran as hooks or by editing the weights in place (and restoring them). */
  evaluatedWith: "hooks" | "weights";
  seconds: number;
}

export interface Study {
  file?: string;
  header: StudyHeader;
  baseline?: TrialMeasures;
  /** Edits measured for comparison (e.g. the paper's selected direction), by label. */
  references: (TrialMeasures & { label: string; key: string })[];
  trials: TrialRecord[];
}

const paramSpec = z.union([
  z.object({ kind: z.literal("float"), low: z.number(), high: z.number() }),
  z.object({ kind: z.literal("categorical"), choices: z.array(z.union([z.string(), z.number(), z.boolean()])).min(1) }),
]);
const measures = { refusal: z.number(), kl: z.number() };
const headerSchema = z.object({
  kind: z.literal("abliterate-study"),
  version: z.literal(1),
  seed: z.number().int(),
  startupTrials: z.number().int().nonnegative(),
  candidates: z.number().int().positive(),
  space: z.record(z.string(), paramSpec),
  directionsFile: z.string(),
  tokenOffset: z.number().int().negative(),
  model: z.string(),
  data: z.object({ harmful: z.number().int(), harmless: z.number().int(), sha256: z.string() }),
  evaluation: z.object({
    maxNewTokens: z.number().int(),
    refusalSubstrings: z.array(z.string()).nullable(),
    klTokens: z.number().int(),
    // Studies written before detectors were recorded counted with the paper's substrings.
    detector: z.string().default("paper"),
  }),
});
const lineSchema = z.union([
  z.object({ baseline: z.object(measures) }),
  z.object({ reference: z.object({ ...measures, label: z.string(), key: z.string() }) }),
  z.object({
    trial: z.number().int().nonnegative(),
    params: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
    ...measures,
    evaluatedWith: z.enum(["hooks", "weights"]),
    seconds: z.number(),
  }),
]);

/**
 * Read a study file. A last line without its newline (a search killed while writing it) is dropped, and with
 * `repair` cut from the file so that appending goes on cleanly; any other bad line is an error naming it.
 */
export async function readStudy(file: string, options: { repair?: boolean } = {}): Promise<Study> {
  const text = await readFile(file, "utf8");
  const lines = text.split("\n");
  const cut = lines.pop()!; // "" when the file ends with a newline
  if (cut !== "" && options.repair) await truncate(file, Buffer.byteLength(text) - Buffer.byteLength(cut));
  if (lines.length === 0) throw new Error(`${file}: empty, not a study file (its first line holds the search's settings)`);
  const parse = (line: string, n: number) => {
    try {
      return JSON.parse(line);
    } catch {
      throw new Error(`${file}:${n}: not JSON: ${line.slice(0, 80)}`);
    }
  };
  const head = headerSchema.safeParse(parse(lines[0], 1));
  if (!head.success)
    throw new Error(
      `${file}:1: not an abliterate study header: ${head.error.issues[0].path.join(".") || "(root)"}: ${head.error.issues[0].message}`,
    );
  const study: Study = { file, header: head.data as StudyHeader, references: [], trials: [] };
  lines.slice(1).forEach((line, i) => {
    const n = i + 2;
    const parsed = lineSchema.safeParse(parse(line, n));
    if (!parsed.success)
      throw new Error(
        `${file}:${n}: not a study line: ${parsed.error.issues[0].path.join(".") || "(root)"}: ${parsed.error.issues[0].message}`,
      );
    const entry = parsed.data;
    if ("baseline" in entry) study.baseline = entry.baseline;
    else if ("reference" in entry) study.references.push(entry.reference);
    else {
      if (entry.trial !== study.trials.length)
        throw new Error(
          `${file}:${n}: trial ${entry.trial} where trial ${study.trials.length} was expected (trials are numbered in order)`,
        );
      for (const name of Object.keys(study.header.space))
        if (!(name in entry.params)) throw new Error(`${file}:${n}: trial ${entry.trial} has no value for ${name}`);
      study.trials.push(entry);
    }
  });
  return study;
}

/** The settings in which a study on disk differs from the one asked for, said field by field. */
export function settingsDiffer(found: StudySettings, wanted: StudySettings): string[] {
  return (Object.keys(wanted) as (keyof StudySettings)[]).flatMap((key) =>
    JSON.stringify(found[key]) === JSON.stringify(wanted[key])
      ? []
      : [`${key}: the study has ${JSON.stringify(found[key])}, this search asks for ${JSON.stringify(wanted[key])}`],
  );
}

/** Start a study file with its header (replacing nothing: the caller checked it does not exist). */
export async function createStudy(file: string, settings: StudySettings): Promise<StudyHeader> {
  const header: StudyHeader = { kind: "abliterate-study", version: 1, ...settings };
  await writeFileAtomic(file, JSON.stringify(header) + "\n");
  return header;
}

/** Append one line and sync it, so that a finished trial survives the process being killed. */
export async function appendStudyLine(
  file: string,
  entry: { baseline: TrialMeasures } | { reference: Study["references"][number] } | TrialRecord,
): Promise<void> {
  const handle = await open(file, "a");
  try {
    await handle.write(JSON.stringify(entry) + "\n");
    await handle.sync();
  } finally {
    await handle.close();
  }
}
