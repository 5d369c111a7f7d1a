// Instruction lists from local files: .json (an array of strings or of objects), .jsonl, .csv,
// .txt (one instruction a line) and .parquet (via hyparquet). Objects are read at a column or field
// named by the caller, by default `text`, else `instruction`, else `prompt`, else `goal`.
import { readFile } from "node:fs/promises";
import { notAFile } from "../files.ts";
import { MAX_RENDERED_CHARS } from "../chat-template.ts";
import { extname } from "node:path";
import { existsSync } from "node:fs";
import { asyncBufferFromFile, parquetReadObjects } from "hyparquet";
import { datasetSplitFiles, looksLikeRepoId, type HubOptions } from "../hub.ts";
import { dataFile } from "../paths.ts";

export const DEFAULT_COLUMNS = ["text", "instruction", "prompt", "goal"];

export class DatasetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DatasetError";
  }
}

export interface LoadInstructionsOptions {
  /** Column or field holding the instruction (default: the first of text, instruction, prompt, goal present). */
  column?: string;
  /** Keep at most this many (the first ones). */
  limit?: number;
}

export async function loadInstructions(path: string, options: LoadInstructionsOptions = {}): Promise<string[]> {
  const rows = await readRows(path, "instructions");
  const instructions = rows.map((row, i) => checkLength(pick(row, options.column, path, i), `${path}: row ${i + 1}`));
  if (instructions.length === 0) throw new DatasetError(`${path}: holds no instructions`);
  return options.limit === undefined ? instructions : instructions.slice(0, options.limit);
}

/** The rows of a data file (.json, .jsonl, .csv, .txt or .parquet); `what` names them in errors. */
export async function readRows(path: string, what = "rows"): Promise<unknown[]> {
  const ext = extname(path).toLowerCase();
  const why = await notAFile(path);
  if (why) throw new DatasetError(`${path}: ${why}`);
  try {
    if (ext === ".parquet") return await parquetReadObjects({ file: await asyncBufferFromFile(path) });
    const text = (await readFile(path, "utf8")).replace(/^\uFEFF/, ""); // a UTF-8 byte-order mark is not part of the first row
    if (ext === ".txt")
      return text
        .split(/\r?\n/)
        .map((l) => l.trim())
        .filter((l) => l.length > 0);
    if (ext === ".jsonl")
      return text
        .split(/\r?\n/)
        .filter((l) => l.trim().length > 0)
        .map((line, i) => parseJson(line, `${path}:${i + 1}`));
    if (ext === ".json") {
      const json = parseJson(text, path);
      const rows = Array.isArray(json) ? json : Array.isArray((json as { data?: unknown }).data) ? (json as { data: unknown[] }).data : [];
      if (!Array.isArray(json) && rows.length === 0)
        throw new DatasetError(`${path}: expected a JSON array of ${what} (or ` + `{"data": [...]})`);
      return rows;
    }
    if (ext === ".csv") return parseCsv(text, path);
    throw new DatasetError(`${path}: unsupported file type "${ext}" (supported: .json, .jsonl, .csv, .txt, .parquet)`);
  } catch (error) {
    if (error instanceof DatasetError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    throw new DatasetError(`${path}: cannot read ${what} (${code ?? (error as Error).message})`);
  }
}

function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new DatasetError(`${where}: not valid JSON (${(error as Error).message})`);
  }
}

/**
 * A text that could never be a prompt (longer than any chat-templated prompt may be) is named with its file and
 * row here, where it is read, rather than blamed on the chat template when it is rendered.
 */
export function checkLength(text: string, where: string): string {
  if (text.length > MAX_RENDERED_CHARS)
    throw new DatasetError(
      `${where}: ${text.length} characters, longer than the ${MAX_RENDERED_CHARS} a chat-templated prompt may have; shorten or drop it`,
    );
  return text;
}

function pick(row: unknown, column: string | undefined, path: string, index: number): string {
  if (typeof row === "string") {
    if (column) throw new DatasetError(`${path}: rows are plain strings, so there is no column "${column}"`);
    return row;
  }
  if (typeof row !== "object" || row === null) throw new DatasetError(`${path}: row ${index + 1} is neither a string nor an object`);
  const record = row as Record<string, unknown>;
  const name = column ?? DEFAULT_COLUMNS.find((c) => Object.hasOwn(record, c));
  if (name === undefined || !Object.hasOwn(record, name)) {
    throw new DatasetError(
      `${path}: row ${index + 1} has no column "${column ?? DEFAULT_COLUMNS.join('", "')}" (columns: ` +
        `${Object.keys(record).join(", ")})`,
    );
  }
  const value = record[name];
  if (typeof value !== "string")
    throw new DatasetError(
      `${path}: row ${index + 1}, column "${name}" is ${
        value === null ? "null" : `a ` + `${Array.isArray(value) ? "list" : typeof value}`
      } (${JSON.stringify(value)?.slice(0, 40)}), not a string`,
    );
  if (value.trim() === "") throw new DatasetError(`${path}: row ${index + 1}, column "${name}" is an empty string`);
  return value;
}

/** RFC 4180 CSV (quoted fields, doubled quotes, newlines inside quotes) with a header row. */
export function parseCsv(text: string, where = "csv"): Record<string, string>[] {
  const records: string[][] = [];
  let field = "";
  let record: string[] = [];
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"' && field === "") quoted = true;
    else if (c === ",") {
      record.push(field);
      field = "";
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      record.push(field);
      field = "";
      if (record.some((f) => f !== "")) records.push(record);
      record = [];
    } else field += c;
  }
  if (quoted) throw new DatasetError(`${where}: a quoted field is not closed`);
  record.push(field);
  if (record.some((f) => f !== "")) records.push(record);
  if (records.length === 0) return [];
  const [header, ...rest] = records;
  return rest.map((r, n) => {
    if (r.length !== header.length)
      throw new DatasetError(`${where}: line ${n + 2} has ${r.length} fields, the header has ` + `${header.length}`);
    return Object.fromEntries(header.map((h, i) => [h, r[i]]));
  });
}

/**
 * Instructions from a local file, or from a Hub dataset written `org/name` or `org/name:split`
 * (default split `train`), e.g. `mlabonne/harmful_behaviors:test`.
 */
export async function loadInstructionSource(
  source: string,
  options: LoadInstructionsOptions & { hub?: HubOptions } = {},
): Promise<string[]> {
  const m = /^([\w.-]+\/[\w.-]+)(?::([\w.-]+))?$/.exec(source);
  if (existsSync(source) || !m || !looksLikeRepoId(m[1])) return loadInstructions(source, options);
  const files = await datasetSplitFiles(m[1], m[2] ?? "train", options.hub);
  const all: string[] = [];
  for (const f of files) all.push(...(await loadInstructions(f, { column: options.column })));
  return options.limit === undefined ? all : all.slice(0, options.limit);
}

export const SPLITS = ["train", "validation", "test"] as const;
export type Split = (typeof SPLITS)[number];

/** The six instruction sets of a run: harmful and harmless, for directions, selection and evaluation. */
export interface InstructionSets {
  harmfulTrain: string[];
  harmlessTrain: string[];
  harmfulVal: string[];
  harmlessVal: string[];
  harmfulTest: string[];
  harmlessTest: string[];
}

export type InstructionSetSources = Partial<Record<keyof InstructionSets, string>>;

/**
 * Stage 1: load the six sets, each from a file or Hub dataset (default: the project's own sets in data/),
 * keeping the first `nTrain`, `nVal` and `nTest` of each.
 */
export async function loadInstructionSets(
  sources: InstructionSetSources,
  options: { column?: string; nTrain: number; nVal: number; nTest: number },
): Promise<InstructionSets> {
  const load = async (name: keyof InstructionSets, kind: "harmful" | "harmless", split: Split, limit: number) =>
    loadInstructionSource(sources[name] ?? dataFile(kind, split), { column: options.column, limit });
  return {
    harmfulTrain: await load("harmfulTrain", "harmful", "train", options.nTrain),
    harmlessTrain: await load("harmlessTrain", "harmless", "train", options.nTrain),
    harmfulVal: await load("harmfulVal", "harmful", "validation", options.nVal),
    harmlessVal: await load("harmlessVal", "harmless", "validation", options.nVal),
    harmfulTest: await load("harmfulTest", "harmful", "test", options.nTest),
    harmlessTest: await load("harmlessTest", "harmless", "test", options.nTest),
  };
}

/**
 * A further evaluation split, measured before and after beside the test split (refusal, harmless KL and
 * answers unchanged, topic mention): its name and its harmful and harmless instructions (files or Hub datasets).
 */
export interface EvaluationSplitSource {
  name: string;
  harmful: string;
  harmless: string;
}

/** The project's free-form requests (data/{harmful,harmless}/freeform.jsonl): written by hand, in no template's phrasing. */
export const FREEFORM_SPLIT: EvaluationSplitSource = {
  name: "freeform",
  harmful: dataFile("harmful", "freeform"),
  harmless: dataFile("harmless", "freeform"),
};

export interface EvaluationSplit {
  name: string;
  harmful: string[];
  harmless: string[];
}

/** Loads evaluation splits, the first `limit` instructions of each set; names must be distinct and not "test". */
export async function loadEvaluationSplits(
  sources: readonly EvaluationSplitSource[],
  options: { column?: string; limit: number },
): Promise<EvaluationSplit[]> {
  const seen = new Set(["test"]);
  const splits: EvaluationSplit[] = [];
  for (const s of sources) {
    if (!/^[\w.-]+$/.test(s.name) || seen.has(s.name))
      throw new Error(
        `evaluation split name ${JSON.stringify(s.name)}: expected letters, digits, ".", "_" or "-", ` +
          `distinct from the other splits' and from "test"`,
      );
    seen.add(s.name);
    splits.push({
      name: s.name,
      harmful: await loadInstructionSource(s.harmful, { column: options.column, limit: options.limit }),
      harmless: await loadInstructionSource(s.harmless, { column: options.column, limit: options.limit }),
    });
  }
  return splits;
}
