// The package's import graph: no module imports itself through others (type imports included), and no stage
// of the method imports a later stage (the stages share the engine and pipeline/measures.ts, scores.ts).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";
import { fileURLToPath } from "node:url";

const SRC = join(dirname(fileURLToPath(import.meta.url)), "..", "src");

/** Every module of src/ (path relative to src/) with the modules it imports by relative path. */
function importGraph(): Map<string, string[]> {
  const files = readdirSync(SRC, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts"));
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const text = readFileSync(join(SRC, file), "utf8");
    const specifiers = [...text.matchAll(/(?:^(?:import|export)\s[^;]*?from\s*|import\()\s*["'](\.{1,2}\/[^"']+)["']/gms)].map((m) => m[1]);
    graph.set(
      file,
      specifiers.map((s) => relative(SRC, normalize(join(SRC, dirname(file), s)))),
    );
  }
  return graph;
}

/** The stage a module belongs to (the README's numbering), or undefined for the engine and shared pieces. */
function stageOf(module: string): number | undefined {
  const stages: [RegExp, number][] = [
    [/^data\//, 1],
    [/^pipeline\/activations\.ts$/, 2],
    [/^pipeline\/directions\.ts$/, 3],
    [/^pipeline\/(select|candidates)\.ts$/, 4],
    [/^pipeline\/orthogonalize\.ts$/, 5],
    [/^export\//, 6],
    [/^pipeline\/(evaluate|projections|detectors|damage|assess)\.ts$/, 7],
    [/^heal\//, 8],
  ];
  return stages.find(([re]) => re.test(module))?.[1];
}

/** A cycle through `start`, as a list of modules, or undefined. */
function cycleFrom(graph: Map<string, string[]>, start: string): string[] | undefined {
  const path: string[] = [];
  const seen = new Set<string>();
  const visit = (m: string): string[] | undefined => {
    if (m === start && path.length > 0) return [...path, m];
    if (seen.has(m)) return undefined;
    seen.add(m);
    path.push(m);
    for (const next of graph.get(m) ?? []) {
      const found = visit(next);
      if (found) return found;
    }
    path.pop();
    return undefined;
  };
  return visit(start);
}

describe("the import graph of src/", () => {
  const graph = importGraph();

  it("reads every module and resolves every relative import to a module of src/", () => {
    assert.ok(graph.size > 50, `only ${graph.size} modules found`);
    for (const [file, deps] of graph)
      for (const d of deps)
        assert.ok(graph.has(d) || d.endsWith(".wasm") || d.endsWith(".json"), `${file} imports ${d}, not a module of src/`);
  });

  it("has no cycle", () => {
    for (const file of graph.keys()) assert.equal(cycleFrom(graph, file)?.join(" -> "), undefined);
  });

  it("no stage imports a later stage", () => {
    for (const [file, deps] of graph) {
      const stage = stageOf(file);
      if (stage === undefined) continue;
      for (const d of deps) {
        const later = stageOf(d);
        assert.ok(later === undefined || later <= stage, `${file} (stage ${stage}) imports ${d} (stage ${later})`);
      }
    }
  });

  it("the checks find what they look for (a planted cycle and a planted backward import)", () => {
    const planted = new Map([
      ...graph,
      ["pipeline/select.ts", [...graph.get("pipeline/select.ts")!, "pipeline/evaluate.ts"]],
      ["pipeline/evaluate.ts", ["pipeline/select.ts"]],
    ]);
    assert.ok(cycleFrom(planted, "pipeline/select.ts"));
    assert.equal(stageOf("pipeline/evaluate.ts")! > stageOf("pipeline/select.ts")!, true);
  });
});
