// The hint and the solution a reader can reveal under each exercise of the notebooks: folded `<details>` blocks
// at the end of the exercise's markdown cell, written from EXERCISE_GOALS and from the solution's source in
// src/notebook/solutions.ts, so that they never drift from what the check and ABLITERATE_SOLUTIONS use.
// `npm run notebooks -- --format` (and `--write`) refreshes them; a test fails when a committed one is stale.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { EXERCISE_GOALS } from "../../src/notebook/exercises.ts";
import { PACKAGE_ROOT } from "../../src/paths.ts";
import { splitLines } from "./format.ts";
import type { Notebook } from "./runner.ts";

const START = "<!-- reveal: generated from src/notebook/solutions.ts by npm run notebooks -- --format -->";
const END = "<!-- /reveal -->";

type ExerciseName = keyof typeof EXERCISE_GOALS;

/** A solution's source as a standalone function: the SOLUTIONS method `name`, from its name to its closing brace. */
export function solutionSource(name: ExerciseName): string {
  const text = readFileSync(join(PACKAGE_ROOT, "src", "notebook", "solutions.ts"), "utf8");
  const lines = text.split("\n");
  const start = lines.findIndex((l) => l.startsWith(`  ${name}(`));
  if (start < 0) throw new Error(`src/notebook/solutions.ts: no solution ${name}`);
  const end = lines.findIndex((l, i) => i > start && l === "  },");
  if (end < 0) throw new Error(`src/notebook/solutions.ts: the solution ${name} does not end with "  },"`);
  return [`function ${lines[start].slice(2)}`, ...lines.slice(start + 1, end).map((l) => l.slice(2)), "}"].join("\n");
}

/** The folded hint and solution of one exercise, as markdown. */
export function revealBlock(name: ExerciseName): string {
  return [
    START,
    "<details><summary>Hint</summary>",
    "",
    `${EXERCISE_GOALS[name][0].toUpperCase()}${EXERCISE_GOALS[name].slice(1)}.`,
    "",
    "</details>",
    "<details><summary>Solution</summary>",
    "",
    "```ts",
    solutionSource(name),
    "```",
    "",
    "</details>",
    END,
  ].join("\n");
}

const sourceOf = (cell: { source: string | string[] }) => [cell.source].flat().join("");

/**
 * The notebook with every exercise's markdown cell (the one before the cell that calls `exercise("name", ...)`)
 * ending in its current reveal block. Returns a new notebook; the input is left as it is.
 */
export function withReveals(notebook: Notebook): Notebook {
  const cells = notebook.cells.map((c) => ({ ...c }));
  for (const [i, cell] of cells.entries()) {
    const name = /\bexercise\("(\w+)"/.exec(cell.cell_type === "code" ? sourceOf(cell) : "")?.[1] as ExerciseName | undefined;
    if (name === undefined) continue;
    let markdown = i - 1;
    while (markdown >= 0 && cells[markdown].cell_type !== "markdown") markdown--;
    if (markdown < 0) throw new Error(`exercise ${name}: no markdown cell before it to explain it`);
    const text = sourceOf(cells[markdown]);
    const at = text.indexOf(START);
    const body = (at >= 0 ? text.slice(0, at) : text).trimEnd();
    cells[markdown].source = splitLines(`${body}\n\n${revealBlock(name)}`);
  }
  return { ...notebook, cells };
}
