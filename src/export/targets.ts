// Where an export may write, decided before any work: outputs kept apart from their sources (real paths
// compared once every link is followed), existing outputs replaced only when asked, and what interrupted
// exports left behind cleaned up.
import { readdir, rm, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { isInside, processAlive, realPathOf } from "../files.ts";

export class ExportError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ExportError";
  }
}

export async function isNonEmptyDir(path: string): Promise<boolean> {
  try {
    return (await readdir(path)).length > 0;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    if ((error as NodeJS.ErrnoException).code === "ENOTDIR") throw new ExportError(`${path}: exists and is not a folder`);
    throw error;
  }
}

/**
 * Where a one-file export (GGUF) may write, checked before any work: outside the source folder once every
 * link is followed, not a folder, and not over an existing file unless `force`.
 */
export async function checkExportFile(sourceDir: string, outFile: string, force = false): Promise<{ source: string; out: string }> {
  const source = await realPathOf(sourceDir);
  const out = await realPathOf(outFile);
  if (isInside(out, source)) {
    const link = out !== resolve(outFile) ? ` (through a link: ${out})` : "";
    throw new ExportError(
      `output file ${outFile} is inside the source folder ${source}${link}; choose a path outside it, the source is never written to`,
    );
  }
  const existing = await stat(out).catch(() => undefined);
  if (existing?.isDirectory()) throw new ExportError(`output file ${outFile} is a folder; give a file name such as model.gguf`);
  if (existing && !force) throw new ExportError(`${out} exists already; pass force to replace it`);
  return { source, out };
}

/** Where a folder export may write, checked before any work: the real paths of source and output kept apart. */
export async function checkExportTarget(sourceDir: string, outDir: string, force = false): Promise<{ source: string; out: string }> {
  const source = await realPathOf(sourceDir);
  const out = await realPathOf(outDir);
  if (isInside(out, source)) {
    const where = out === source ? "the source folder" : "inside the source folder " + source;
    const link = out !== resolve(outDir) ? ` (through a link: ${out})` : "";
    throw new ExportError(`output folder ${outDir} is ${where}${link}; choose a folder outside it, the source is never written to`);
  }
  if (isInside(source, out)) throw new ExportError(`output folder ${outDir} contains the source folder ${source}; choose another`);
  if (!force && (await isNonEmptyDir(out))) throw new ExportError(`output folder ${out} is not empty; pass force to replace it`);
  return { source, out };
}

/** Partial folders of earlier exports to `out` whose process has died: removed, and their names returned. */
export async function removeStalePartials(out: string): Promise<string[]> {
  const prefix = `.${basename(out)}.partial-`;
  const removed: string[] = [];
  for (const name of await readdir(dirname(out)).catch(() => [] as string[])) {
    const m = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(\\d+)-\\d+(\\.old)?$`).exec(name);
    if (m && !processAlive(Number(m[1]))) {
      await rm(join(dirname(out), name), { recursive: true, force: true });
      removed.push(name);
    }
  }
  return removed;
}
