// Locations inside the package: the embedded demo model and the project's instruction sets.
import { existsSync } from "node:fs";
import { dirname, isAbsolute, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error("cannot find the abliterate package root");
    dir = parent;
  }
  return dir;
}

export const PACKAGE_ROOT = packageRoot();
/** The embedded demo model, trained by `npm run demo:train`. */
export const DEMO_MODEL_DIR = join(PACKAGE_ROOT, "models", "demo");
/** The demo model before safety tuning (its stage 1): what a compliant answer looks like. */
export const DEMO_BASE_MODEL_DIR = join(PACKAGE_ROOT, "models", "demo-base");
export const DATA_DIR = join(PACKAGE_ROOT, "data");

/**
 * The project's instruction set of one kind and split: the template splits (train, validation, test, heldout)
 * and the hand-written free-form requests (freeform), an evaluation split only.
 */
export const dataFile = (kind: "harmful" | "harmless", split: "train" | "validation" | "test" | "heldout" | "freeform") =>
  join(DATA_DIR, kind, `${split}.jsonl`);

/** A small fixed set of plain-English texts, written for the project: the cross-entropy measure of harmless damage. */
export const REFERENCE_TEXT_FILE = join(DATA_DIR, "reference-text.jsonl");

/**
 * A path for display: relative to the package root when it lies inside it ("models/demo"), else unchanged,
 * so that printed outputs do not carry the machine's own folders.
 */
export function displayPath(path: string): string {
  if (!isAbsolute(path)) return path;
  const inside = relative(PACKAGE_ROOT, path);
  return inside === "" ? "." : inside.startsWith("..") || isAbsolute(inside) ? path : inside.split(sep).join("/");
}
