// Small file-system helpers shared by the loaders, the downloads and the exports.
import { link, lstat, mkdir, open, readFile, realpath, rename, rm, stat, writeFile } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, relative, resolve } from "node:path";
import { copyRange, type FileRange } from "./copy-range.ts";

/** Whether a file or folder exists at `path`. */
export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Whether `child` is `parent` or lies inside it (paths compared as given). */
export function isInside(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
}

/** The real path of `path`, or of its deepest existing ancestor joined with the rest (for paths not created yet). */
export async function realPathOf(path: string): Promise<string> {
  const absolute = resolve(path);
  try {
    return await realpath(absolute);
  } catch {
    const parent = dirname(absolute);
    if (parent === absolute) return absolute;
    return join(await realPathOf(parent), basename(absolute));
  }
}

/** Whether `child` lies inside `parent` once every link in either is followed. */
export async function isReallyInside(child: string, parent: string): Promise<boolean> {
  return isInside(await realPathOf(child), await realPathOf(parent));
}

/**
 * A relative path inside a repository or folder, as a server or an index gives it: no absolute part, no
 * `..`, no backslash, no empty or `.` segment. Returns it, or throws naming `what`.
 */
export function checkRelativePath(path: unknown, what: string): string {
  if (typeof path !== "string" || path === "") throw new Error(`${what}: ${JSON.stringify(path)} is not a file name`);
  const bad =
    isAbsolute(path) || path.includes("\\") || path.includes("\0") || path.split("/").some((s) => s === "" || s === "." || s === "..");
  if (bad)
    throw new Error(`${what}: ${JSON.stringify(path)} is not a plain relative path inside the folder (absolute, "..", "." or backslashes)`);
  return path;
}

/**
 * Write a file under a temporary name beside it and publish it only once complete: renamed over `path` with
 * `overwrite`, else linked into place, which fails atomically when something is there already (with
 * `taken()`'s message). `write` receives a function appending bytes and one appending a byte range of another
 * open file (see copy-range.ts); the bytes written are returned. An interrupted write leaves nothing at `path`.
 */
export async function writeFileWhole(
  path: string,
  write: (put: (bytes: Uint8Array) => Promise<void>, copy: (range: FileRange) => Promise<void>) => Promise<void>,
  options: { overwrite?: boolean; sync?: boolean; taken?: () => string } = {},
): Promise<number> {
  const partial = join(dirname(path), `.${basename(path)}.partial-${process.pid}-${Date.now()}`);
  let position = 0;
  try {
    const handle = await open(partial, "wx");
    try {
      await write(
        async (bytes) => {
          await handle.write(bytes, 0, bytes.length, position);
          position += bytes.length;
        },
        async (range) => {
          position += await copyRange(range, handle, position);
        },
      );
      if (options.sync) await handle.sync();
    } finally {
      await handle.close();
    }
    if (options.overwrite) await rename(partial, path);
    else {
      await link(partial, path).catch((error: NodeJS.ErrnoException) => {
        throw error.code === "EEXIST" ? new Error(options.taken ? options.taken() : `${path} exists already (EEXIST)`) : error;
      });
    }
  } catch (error) {
    throw writeFailure(error, path);
  } finally {
    await rm(partial, { force: true });
  }
  return position;
}

/** Write errors that Node reports without the file's name, and what they mean. */
const WRITE_ERRORS: Record<string, string> = {
  ENOSPC: "the disk is full",
  EDQUOT: "the disk quota is used up",
  EFBIG: "the file is larger than the file system (or the file-size limit) allows",
  EIO: "an input/output error",
  EROFS: "the file system is read-only",
};

/**
 * `error` said with the file it was writing: a full disk reports "ENOSPC: no space left on device, write",
 * naming nothing. Other errors are returned as they are.
 */
export function writeFailure(error: unknown, path: string, after = "nothing was written there"): unknown {
  const e = error as NodeJS.ErrnoException;
  const meaning = typeof e?.code === "string" ? WRITE_ERRORS[e.code] : undefined;
  if (meaning === undefined) return error;
  return Object.assign(new Error(`${path}: cannot be written: ${meaning} (${e.code}); ${after}`, { cause: error }), { code: e.code });
}

/** Replace `path` with `data` as a whole (see writeFileWhole). */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  await writeFileWhole(path, (put) => put(typeof data === "string" ? Buffer.from(data, "utf8") : data), { overwrite: true, sync: true });
}

/** Whether a process with this id is running (on this machine). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Hold an exclusive lock file while `fn` runs. A lock left by a process that no longer runs is taken
 * over; one held by a live process makes this wait up to `waitMs`, then fail with `busy()`'s message.
 * The lock appears with its process id already in it (written to a private file, then hard-linked into
 * place, which fails if the lock exists), so a second process never reads a half-written lock as stale.
 */
export async function withLock<T>(
  lockPath: string,
  fn: () => Promise<T>,
  options: { waitMs?: number; busy?: (pid: number) => string } = {},
): Promise<T> {
  await mkdir(dirname(lockPath), { recursive: true });
  const deadline = Date.now() + (options.waitMs ?? 0);
  const mine = `${lockPath}.${process.pid}-${Math.random().toString(36).slice(2)}`;
  try {
    await writeFile(mine, String(process.pid));
  } catch (error) {
    await rm(mine, { force: true }); // a full disk leaves no debris
    throw new Error(`cannot write the lock file ${lockPath} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  try {
    for (;;) {
      try {
        await link(mine, lockPath);
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      }
      const found = await lstat(lockPath).catch(() => undefined);
      if (found && !found.isFile())
        throw new Error(
          `${lockPath}: a lock file goes here, but this is ${found.isDirectory() ? "a folder" : "not a regular file"}; ` +
            `remove it or choose another output`,
        );
      const pid = Number((await readFile(lockPath, "utf8").catch(() => "")).trim());
      if (!Number.isInteger(pid) || pid <= 0 || !processAlive(pid)) {
        await takeStaleLock(lockPath);
        continue;
      }
      if (Date.now() >= deadline)
        throw new Error(
          `${options.busy ? options.busy(pid) : `${lockPath} is held by process ${pid}`} (lock file ${lockPath}; if process ${pid} ` +
            `is not this tool, its id was reused after a crash: remove the lock file)`,
        );
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await rm(mine, { force: true });
  }
  try {
    return await fn();
  } finally {
    await rm(lockPath, { force: true });
  }
}

/**
 * Remove a lock whose process is gone. It is first renamed to a private name, so that of two
 * processes taking over the same stale lock only one removes it; if what was renamed turns out to be a
 * new lock taken meanwhile, it is linked back.
 */
async function takeStaleLock(lockPath: string): Promise<void> {
  const aside = `${lockPath}.stale-${process.pid}-${Math.random().toString(36).slice(2)}`;
  try {
    await rename(lockPath, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return; // someone else took it over
    throw error;
  }
  const pid = Number((await readFile(aside, "utf8").catch(() => "")).trim());
  if (Number.isInteger(pid) && pid > 0 && processAlive(pid)) {
    await link(aside, lockPath).catch(() => undefined);
  }
  await rm(aside, { force: true });
}

/**
 * Why `path` cannot be read as a file, or undefined when it can (or does not exist, which the read reports):
 * a folder, or a pipe, socket or device, whose read would fail oddly or wait forever.
 */
export async function notAFile(path: string): Promise<string | undefined> {
  const found = await stat(path).catch(() => undefined);
  if (!found || found.isFile()) return undefined;
  return found.isDirectory() ? "is a folder, not a file" : "is not a regular file (a pipe, socket or device); give a file";
}
