// Where an export may write, decided before any work: outputs kept apart from their sources (real paths
// compared once every link is followed), existing outputs replaced only when asked, and what interrupted
// exports left behind cleaned up.
import { lstat, mkdir, readdir, realpath, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { exists, isInside, processAlive, realPathOf, withLock, writeFailure } from "../files.ts";
import { hubCacheDir } from "../hub.ts";

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

/** The real paths of the source folder's files (a Hub snapshot's files are links into its blobs/). */
async function sourceFiles(source: string): Promise<string[]> {
  const files: string[] = [];
  for (const entry of await readdir(source, { withFileTypes: true }).catch(() => [])) {
    files.push(await realpath(join(source, entry.name)).catch(() => join(source, entry.name)));
  }
  return files;
}

/**
 * What replacing `out` would destroy of the user's, checked before any work: a file of the source (through a
 * link: a snapshot whose files link into `out`), the Hub cache, or, for a folder, anything this tool did not
 * write (a folder is replaced only when it is empty or holds an export's abliterate.json).
 */
async function checkReplaceable(source: string, out: string, given: string, folder: boolean): Promise<void> {
  for (const file of await sourceFiles(source)) {
    if (isInside(file, out))
      throw new ExportError(
        `${given} holds ${file}, a file of the source checkpoint ${source} (its link points there); choose an output outside it, ` +
          `the source is never written to`,
      );
  }
  const hub = await realPathOf(hubCacheDir());
  if (isInside(out, hub) || isInside(hub, out))
    throw new ExportError(`${given} ${isInside(out, hub) ? "is inside" : "contains"} the Hub cache ${hub}; choose an output outside it`);
  if (folder && (await isNonEmptyDir(out)) && !(await exists(join(out, "abliterate.json"))))
    throw new ExportError(
      `${given} is not empty and is not an export of this tool (it has no abliterate.json): an export replaces only an ` +
        `earlier export (with --force) or an empty folder, never other files; choose another folder`,
    );
}

/**
 * Where a one-file export (GGUF) may write, checked before any work: outside the source folder once every
 * link is followed, not a folder, and not over an existing file unless `force`.
 */
export async function checkExportFile(sourceDir: string, outFile: string, force = false): Promise<{ source: string; out: string }> {
  const source = await realPathOf(sourceDir);
  const link = await lstat(outFile).catch(() => undefined);
  if (link?.isSymbolicLink())
    throw new ExportError(
      `output file ${outFile} is a link (to ${await realpath(outFile).catch(() => "nothing")}); writing through it would replace ` +
        `what it points to: give the path of a file, not of a link`,
    );
  const out = await realPathOf(outFile);
  if (isInside(out, source)) {
    const link = out !== resolve(outFile) ? ` (through a link: ${out})` : "";
    throw new ExportError(
      `output file ${outFile} is inside the source folder ${source}${link}; choose a path outside it, the source is never written to`,
    );
  }
  const existing = await stat(out).catch(() => undefined);
  if (existing?.isDirectory()) throw new ExportError(`output file ${outFile} is a folder; give a file name such as model.gguf`);
  if (existing && !force) throw new ExportError(`${out} exists already; pass --force (force: true in code) to replace it`);
  await checkReplaceable(source, out, `output file ${outFile}`, false);
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
  await checkReplaceable(source, out, `output folder ${outDir}`, true);
  if (!force && (await isNonEmptyDir(out)))
    throw new ExportError(`output folder ${out} is not empty; pass --force (force: true in code) to replace it`);
  return { source, out };
}

/**
 * Write an export folder `outDir` from `source` without ever leaving a half-written one: the target checked
 * (`checkExportTarget`), a lock beside it, a non-empty folder refused without `force`, stale partials of dead
 * exports removed, the folder built by `build` in a temporary folder beside it, and renamed into place only when
 * `build` returns. On failure the partial folder is removed and the error says that `outDir` is as it was.
 */
export async function writeExportFolder<T>(
  sourceDir: string,
  outDir: string,
  options: { force?: boolean; onNotice?: (line: string) => void; what: string },
  build: (paths: { source: string; out: string; tmp: string }) => Promise<T>,
): Promise<T> {
  const { source, out } = await checkExportTarget(sourceDir, outDir, options.force);
  await mkdir(dirname(out), { recursive: true });
  return withLock(
    join(dirname(out), `.${basename(out)}.lock`),
    async () => {
      if (!options.force && (await isNonEmptyDir(out)))
        throw new ExportError(`output folder ${out} is not empty; pass --force (force: true in code) to replace it`);
      for (const name of await removeStalePartials(out))
        options.onNotice?.(`removed ${join(dirname(out), name)}, left by an interrupted export`);
      const tmp = join(dirname(out), `.${basename(out)}.partial-${process.pid}-${Date.now()}`);
      try {
        const result = await build({ source, out, tmp });
        await replaceFolder(out, tmp);
        return result;
      } catch (error) {
        await rm(tmp, { recursive: true, force: true });
        throw writeFailure(error, out, `${out} is as it was, and the partial ${options.what} was removed`);
      }
    },
    { busy: (pid) => `another export (process ${pid}) is writing ${out}; wait for it to finish or choose another folder` },
  );
}

/** Put the finished folder `tmp` in the place of `out` (renames only, so `out` is never half written). */
export async function replaceFolder(out: string, tmp: string): Promise<void> {
  if (await isNonEmptyDir(out)) {
    const old = `${tmp}.old`;
    await rename(out, old);
    await rename(tmp, out);
    await rm(old, { recursive: true, force: true });
  } else {
    await rm(out, { recursive: true, force: true }); // an empty folder
    await rename(tmp, out);
  }
}

/**
 * What earlier exports to `out` left when their process died (killed, or a full disk): partial folders and
 * files, a k-quant's float file, the lock's private files. Removed, and their names returned.
 */
export async function removeStalePartials(out: string): Promise<string[]> {
  const base = basename(out).replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const stale = new RegExp(
    `^(?:\\.${base}\\.partial-(\\d+)-\\d+(?:\\.old)?` + // a partial folder or file, and a replaced folder set aside
      `|\\.${base}\\.(?:f32|f16|bf16)-(\\d+)\\.gguf` + // a k-quant's float file
      `|\\.?${base}\\.lock\\.(?:stale-)?(\\d+)-[a-z0-9]+)$`, // the lock's private files
  );
  const removed: string[] = [];
  for (const name of await readdir(dirname(out)).catch(() => [] as string[])) {
    const m = stale.exec(name);
    const pid = m && Number(m[1] ?? m[2] ?? m[3]);
    if (pid && !processAlive(pid)) {
      await rm(join(dirname(out), name), { recursive: true, force: true });
      removed.push(name);
    }
  }
  return removed;
}

/**
 * Files a command is about to write beside an export (reports, pairs, configs), checked before any work: none
 * may exist unless `force`, be a link (writing through it would change what it points to) or a folder.
 */
export async function checkOutputFiles(paths: readonly string[], force = false): Promise<void> {
  for (const path of paths) {
    const found = await lstat(path).catch(() => undefined);
    if (found && !force && !found.isSymbolicLink() && !found.isDirectory())
      throw new ExportError(`${path} exists already; pass --force (force: true in code) to replace it (nothing has been written)`);
    if (found?.isSymbolicLink())
      throw new ExportError(
        `${path} is a link (to ${await realpath(path).catch(() => "nothing")}); writing it would change what it points to: ` +
          `remove the link or choose another output folder`,
      );
    if (found?.isDirectory())
      throw new ExportError(`${path} is a folder, where a file is to be written; remove it or choose another output folder`);
  }
}
