// Models and datasets from the Hugging Face Hub, in the hub's standard cache layout, so files
// downloaded here and by Python's huggingface_hub are shared:
//   $HF_HUB_CACHE (default $HF_HOME/hub, default ~/.cache/huggingface/hub)
//     models--org--name/ (datasets--org--name/)
//       refs/main                      the commit a branch or tag points to
//       blobs/<etag>                   file contents, named by their hash (sha256 for LFS files, git's sha1 for others)
//       snapshots/<commit>/<path>      symlinks to blobs
// As huggingface_hub does: a file's metadata (commit, linked ETag and size) is read from the first,
// unredirected answer; the body is fetched uncompressed into blobs/<etag>.incomplete (resumed when a partial
// one is there), its size and hash checked, then renamed into place. Every value the server controls (commit,
// ETag, file names) is validated, and nothing is written outside the cache folder.
// HF_HUB_OFFLINE=1 resolves everything from the cache and never touches the network; HF_ENDPOINT replaces
// https://huggingface.co; HF_TOKEN is sent when set; HF_HUB_DOWNLOAD_TIMEOUT sets the read timeout (seconds).
// Written with fetch rather than @huggingface/hub because that library's cache writes no refs/, so a
// branch name could never be resolved offline.
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join, relative } from "node:path";
import { pipeline } from "node:stream/promises";
import { Readable, Transform } from "node:stream";
import { checkRelativePath, exists, isReallyInside, withLock } from "./files.ts";

export type RepoType = "model" | "dataset";

export interface HubOptions {
  revision?: string;
  /** Only files whose path passes this test are downloaded. */
  filter?: (path: string) => boolean;
  onProgress?: (file: string, doneBytes: number, totalBytes: number | undefined) => void;
  /** Overrides HF_ENDPOINT. */
  endpoint?: string;
  /** Overrides HF_HUB_CACHE / HF_HOME. */
  cacheDir?: string;
  /** Overrides HF_HUB_OFFLINE. */
  offline?: boolean;
  /** Milliseconds to wait for a connection or for the next piece of a body (default HF_HUB_DOWNLOAD_TIMEOUT or 10 s). */
  timeoutMs?: number;
  /** Attempts after the first for server errors (5xx, 429) and broken connections (default 5). */
  retries?: number;
  /** First wait between attempts, doubled each time up to 8 s (default 1 s). */
  retryBaseMs?: number;
}

export class HubError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HubError";
  }
}

export const hubEndpoint = () => (process.env.HF_ENDPOINT ?? "https://huggingface.co").replace(/\/+$/, "");
export const hubCacheDir = () => process.env.HF_HUB_CACHE ?? join(process.env.HF_HOME ?? join(homedir(), ".cache", "huggingface"), "hub");
export const hubOffline = () => ["1", "true", "yes", "on"].includes((process.env.HF_HUB_OFFLINE ?? "").toLowerCase());

/** The idle timeout in milliseconds: `timeoutMs`, else HF_HUB_DOWNLOAD_TIMEOUT (seconds), else 10 s; refused unless positive. */
function timeoutOf(options: HubOptions): number {
  if (options.timeoutMs !== undefined) {
    if (!(Number.isFinite(options.timeoutMs) && options.timeoutMs > 0))
      throw new HubError(`timeoutMs is ${options.timeoutMs}; expected a positive number of milliseconds`);
    return options.timeoutMs;
  }
  const setting = process.env.HF_HUB_DOWNLOAD_TIMEOUT;
  if (setting === undefined || setting.trim() === "") return 10_000;
  const seconds = Number(setting);
  if (!(Number.isFinite(seconds) && seconds > 0))
    throw new HubError(`HF_HUB_DOWNLOAD_TIMEOUT is ${JSON.stringify(setting)}; expected a positive number of seconds`);
  return seconds * 1000;
}

/** The Hub's address, `options.endpoint` or HF_ENDPOINT, checked to be an http(s) URL before anything is asked of it. */
function endpointOf(options: HubOptions): string {
  const endpoint = (options.endpoint ?? hubEndpoint()).replace(/\/+$/, "");
  let url: URL | undefined;
  try {
    url = new URL(endpoint);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== "http:" && url.protocol !== "https:"))
    throw new HubError(
      `${options.endpoint !== undefined ? "the endpoint" : "HF_ENDPOINT"} ${JSON.stringify(endpoint)} is not an http(s) URL ` +
        `(for example https://huggingface.co)`,
    );
  return endpoint;
}

/** `org/name`: a Hub repository id rather than a local path. */
export function looksLikeRepoId(source: string): boolean {
  return /^[\w.-]+\/[\w.-]+$/.test(source) && !source.startsWith(".") && !source.includes("..");
}

const repoFolder = (type: RepoType, repo: string) => `${type}s--${repo.replace(/\//g, "--")}`;
const COMMIT = /^[0-9a-f]{40}$/;
/** A blob's name: git's sha1 of a regular file (40 hex) or the sha256 of an LFS file (64 hex). */
const BLOB_HASH = /^([0-9a-f]{40}|[0-9a-f]{64})$/;

/**
 * The token, for requests to the Hub's own host only: a redirect to another host (a CDN) never receives it,
 * as huggingface_hub does.
 */
function authHeaders(url: string, endpoint: string): Record<string, string> {
  const token = process.env.HF_TOKEN ?? process.env.HUGGING_FACE_HUB_TOKEN;
  return token && new URL(url).host === new URL(endpoint).host ? { authorization: `Bearer ${token}` } : {};
}

const RETRY_STATUS = new Set([429, 500, 502, 503, 504]);
const MAX_REDIRECTS = 10;

/**
 * A timer that aborts a request when nothing arrives for `ms`: armed while waiting for the headers, re-armed by
 * every piece of the body, so that a slow but steady download is never cut and a stalled one always is.
 */
class IdleTimeout {
  readonly controller = new AbortController();
  readonly reason = new Error("idle timeout");
  private timer: NodeJS.Timeout | undefined;
  constructor(readonly ms: number) {
    this.kick();
  }
  kick(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.controller.abort(this.reason), this.ms).unref(); // never keeps the process alive
  }
  stop(): void {
    clearTimeout(this.timer);
  }
  /** Whether `error` is this timer's abort. */
  fired(error: unknown): boolean {
    return error === this.reason || (error as { cause?: unknown })?.cause === this.reason;
  }
}

interface Answer {
  response: Response;
  /** Re-armed by the caller for each piece of the body, stopped once it is read. */
  idle: IdleTimeout;
  /** The URL that answered, after redirects. */
  url: string;
}

/**
 * fetch with an idle timeout (connection, headers, each piece of the body), redirects followed by hand so that
 * the token stays on the Hub's host (`manual` keeps a 3xx for the caller), and retries with exponential backoff
 * on server errors, stalls and broken connections. Bodies are asked for uncompressed, as huggingface_hub does.
 */
async function request(
  url: string,
  what: string,
  init: { method?: string; headers?: Record<string, string>; redirect?: "manual" },
  options: HubOptions,
): Promise<Answer> {
  const timeoutMs = timeoutOf(options);
  const endpoint = endpointOf(options);
  const retries = options.retries ?? 5;
  for (let attempt = 0; ; attempt++) {
    let failure: string;
    const idle = new IdleTimeout(timeoutMs);
    try {
      let at = url;
      for (let hops = 0; ; hops++) {
        const response = await fetch(at, {
          method: init.method,
          redirect: "manual",
          headers: { "accept-encoding": "identity", ...authHeaders(at, endpoint), ...init.headers },
          signal: idle.controller.signal,
        });
        const location = response.headers.get("location");
        if (init.redirect === "manual" || response.status < 300 || response.status >= 400 || location === null) {
          if (!RETRY_STATUS.has(response.status)) {
            idle.kick();
            return { response, idle, url: at };
          }
          failure = `answered ${response.status} ${response.statusText}`;
          await response.body?.cancel();
          break;
        }
        await response.body?.cancel();
        if (hops >= MAX_REDIRECTS) throw new HubError(`${what}: ${url} redirects more than ${MAX_REDIRECTS} times`);
        at = new URL(location, at).href;
      }
    } catch (error) {
      if (error instanceof HubError) throw error;
      const e = error as Error & { cause?: { code?: string; message?: string } };
      if (!idle.fired(error) && e.cause === undefined) throw new HubError(`${what}: cannot ask ${url} (${e.message})`);
      failure = idle.fired(error)
        ? `no answer within ${timeoutMs / 1000} s (HF_HUB_DOWNLOAD_TIMEOUT)`
        : `cannot be reached (${e.cause?.code ?? e.cause?.message ?? e.message})`;
    }
    idle.stop();
    if (attempt >= retries)
      throw new HubError(`${what}: ${url} ${failure}, ${retries + 1} attempts; offline? set HF_HUB_OFFLINE=1 to use the cache only`);
    await backoff(attempt, options);
  }
}

const backoff = (attempt: number, options: HubOptions) =>
  new Promise((r) => setTimeout(r, Math.min(8000, (options.retryBaseMs ?? 1000) * 2 ** attempt)));

function checkStatus(response: Response, url: string, what: string): void {
  if (response.status === 401 || response.status === 403)
    throw new HubError(`${what}: ${url} answered ${response.status}; a gated or private repository needs HF_TOKEN`);
  if (response.status === 404) throw new HubError(`${what}: ${url} answered 404; check the repository id, type and revision`);
  if (!response.ok && !(response.status >= 300 && response.status < 400))
    throw new HubError(`${what}: ${url} answered ${response.status} ${response.statusText}`);
}

async function readJson({ response, idle }: Answer, url: string): Promise<unknown> {
  let text = "";
  const decoder = new TextDecoder();
  try {
    for await (const piece of response.body ? Readable.fromWeb(response.body as never) : []) {
      idle.kick();
      text += decoder.decode(piece as Uint8Array, { stream: true });
      if (text.length > MAX_JSON_CHARS) throw new HubError(`${url}: the answer is longer than ${MAX_JSON_CHARS} characters`);
    }
  } catch (error) {
    if (error instanceof HubError) throw error;
    throw new HubError(
      `${url}: the answer broke off (${idle.fired(error) ? `nothing for ${idle.ms / 1000} s` : (error as Error).message}); run again`,
    );
  } finally {
    idle.stop();
  }
  text += decoder.decode();
  try {
    return JSON.parse(text);
  } catch {
    throw new HubError(
      `${url}: the answer is not JSON (it begins ${JSON.stringify(text.slice(0, 40))}); is HF_ENDPOINT a Hugging Face Hub?`,
    );
  }
}

/** The longest API answer read (a repository listing of a few hundred thousand files). */
const MAX_JSON_CHARS = 100_000_000;

/** Fail unless `path` (once links are followed) lies inside the cache folder `root`. */
async function confine(path: string, root: string, what: string): Promise<void> {
  if (!(await isReallyInside(path, root)))
    throw new HubError(`${what}: ${path} lies outside the cache folder ${root}; refusing to write there`);
}

/**
 * Download a repository snapshot (or the files `filter` keeps) into the cache and return the
 * snapshot folder. With HF_HUB_OFFLINE=1, return the cached snapshot or fail saying what is missing.
 */
export async function snapshotDownload(type: RepoType, repo: string, options: HubOptions = {}): Promise<string> {
  if (!looksLikeRepoId(repo)) throw new HubError(`${JSON.stringify(repo)} is not a Hub repository id (org/name)`);
  const revision = options.revision ?? "main";
  const root = options.cacheDir ?? hubCacheDir();
  const storage = join(root, repoFolder(type, repo));
  const offline = options.offline ?? hubOffline();
  if (offline) {
    const refPath = join(storage, "refs", revision);
    const ref = COMMIT.test(revision) ? revision : (await exists(refPath)) ? (await readFile(refPath, "utf8")).trim() : undefined;
    const commit = ref !== undefined && COMMIT.test(ref) ? ref : undefined;
    const snapshot = commit ? join(storage, "snapshots", commit) : undefined;
    if (!snapshot || !(await exists(snapshot)))
      throw new HubError(`${type} ${repo}@${revision} is not in the cache ${storage} and HF_HUB_OFFLINE=1 forbids downloading it`);
    return snapshot;
  }
  const endpoint = endpointOf(options);
  timeoutOf(options);
  const api = `${endpoint}/api/${type}s/${repo}/revision/${encodeURIComponent(revision)}`;
  const answer = await request(api, `${type} ${repo}`, {}, options);
  checkStatus(answer.response, api, `${type} ${repo}`);
  const info = (await readJson(answer, api)) as { sha?: unknown; siblings?: { rfilename?: unknown }[] };
  if (typeof info.sha !== "string" || !COMMIT.test(info.sha))
    throw new HubError(`${api}: the answer's sha ${JSON.stringify(info.sha)} is not a 40-character hexadecimal commit id`);
  if (!Array.isArray(info.siblings)) throw new HubError(`${api}: the answer has no list of files (siblings)`);
  const commit = info.sha;
  const snapshot = join(storage, "snapshots", commit);
  const listed = info.siblings.map((s) => {
    try {
      return checkRelativePath(s?.rfilename, `${api}: file name`);
    } catch (error) {
      throw new HubError((error as Error).message);
    }
  });
  const files = listed.filter((f) => (options.filter ? options.filter(f) : true));
  if (files.length === 0) throw new HubError(`${type} ${repo}@${revision} has no files to download${options.filter ? " that match" : ""}`);
  checkSnapshotPaths(files, `${api}: file name`);
  await confine(storage, root, `${type} ${repo}`); // before anything is created: a link may lead out of the cache
  await mkdir(join(storage, "blobs"), { recursive: true });
  await confine(storage, root, `${type} ${repo}`);
  const prefix = type === "dataset" ? "datasets/" : "";
  for (const file of files) {
    const url = `${endpoint}/${prefix}${repo}/resolve/${commit}/${file.split("/").map(encodeURIComponent).join("/")}`;
    await downloadFile(url, `${type} ${repo}: ${file}`, join(snapshot, file), storage, file, options);
  }
  if (!COMMIT.test(revision)) {
    await mkdir(dirname(join(storage, "refs", revision)), { recursive: true });
    await confine(join(storage, "refs", revision), storage, `${type} ${repo}`);
    await writeFile(join(storage, "refs", revision), commit);
  }
  return snapshot;
}

/** The longest name a file system commonly accepts for one path component, in bytes. */
const MAX_NAME_BYTES = 255;

/**
 * The files of a snapshot must be able to lie side by side on disk: no name component longer than a file
 * system allows, and no file that is also the folder of another.
 */
function checkSnapshotPaths(files: readonly string[], what: string): void {
  const all = new Set(files);
  for (const file of files) {
    const long = file.split("/").find((part) => Buffer.byteLength(part) > MAX_NAME_BYTES);
    if (long !== undefined)
      throw new HubError(
        `${what}: ${JSON.stringify(file)} has a name part of ${Buffer.byteLength(long)} bytes, more than ${MAX_NAME_BYTES}`,
      );
    const parts = file.split("/");
    for (let i = 1; i < parts.length; i++) {
      const folder = parts.slice(0, i).join("/");
      if (all.has(folder))
        throw new HubError(`${what}: ${JSON.stringify(folder)} is listed both as a file and as the folder of ${JSON.stringify(file)}`);
    }
  }
}

/** The hash a blob is named by, of a file on disk: sha256 (64 hex) or git's blob sha1 (40 hex). */
async function blobHash(path: string, kind: "sha256" | "git-sha1"): Promise<string> {
  const hash = createHash(kind === "sha256" ? "sha256" : "sha1");
  if (kind === "git-sha1") hash.update(`blob ${(await stat(path)).size}\0`);
  await pipeline(createReadStream(path), new Transform({ transform: (chunk, _, done) => (hash.update(chunk), done()) }));
  return hash.digest("hex");
}

async function downloadFile(url: string, what: string, pointer: string, storage: string, file: string, options: HubOptions): Promise<void> {
  await confine(pointer, storage, what);
  if (await exists(pointer)) return;
  // Metadata from the first answer, unredirected: a CDN redirect would lose X-Linked-Etag and X-Linked-Size.
  let head = await request(url, what, { method: "HEAD", redirect: "manual" }, options);
  head.idle.stop();
  let downloadUrl = url;
  if (head.response.status >= 300 && head.response.status < 400) {
    const location = head.response.headers.get("location");
    if (!location) throw new HubError(`${what}: ${url} redirects without a Location`);
    downloadUrl = new URL(location, url).href;
    if (new URL(downloadUrl).host === new URL(url).host && !head.response.headers.get("x-linked-etag")) {
      head = await request(downloadUrl, what, { method: "HEAD", redirect: "manual" }, options); // a renamed repository: same server
      head.idle.stop();
    }
  }
  checkStatus(head.response, url, what);
  const rawEtag = head.response.headers.get("x-linked-etag") ?? head.response.headers.get("etag") ?? "";
  const etag = rawEtag.replace(/^W\//, "").replace(/"/g, "");
  if (!BLOB_HASH.test(etag))
    throw new HubError(
      `${what}: ${url} gave the ETag ${JSON.stringify(rawEtag)}, which is not a sha256 or git sha1 of the file; refusing to name ` +
        `a cache file after it`,
    );
  const sizeHeader = head.response.headers.get("x-linked-size") ?? head.response.headers.get("content-length");
  const size = sizeHeader !== null && /^\d+$/.test(sizeHeader) ? Number(sizeHeader) : undefined;
  const blob = join(storage, "blobs", etag);
  await confine(blob, storage, what);
  await withLock(`${blob}.lock`, async () => {
    if (await exists(blob)) return; // another file with the same content, or another process, got it
    const incomplete = `${blob}.incomplete`;
    const retries = options.retries ?? 5;
    for (let attempt = 0; ; attempt++) {
      try {
        await fetchBody(downloadUrl, what, incomplete, file, size, options);
        break;
      } catch (error) {
        if (!(error instanceof BrokenBody) || attempt >= retries)
          throw error instanceof BrokenBody ? new HubError(`${error.message}; run again to resume it`) : error;
        await backoff(attempt, options); // the partial file stays: the next attempt resumes it
      }
    }
    const kind = etag.length === 64 ? "sha256" : "git-sha1";
    const digest = await blobHash(incomplete, kind);
    if (digest !== etag) {
      await rm(incomplete, { force: true });
      throw new HubError(
        `${what}: the file from ${downloadUrl} has ${kind} ${digest}, not the ${etag} the server announced; the download was discarded`,
      );
    }
    await rename(incomplete, blob);
  });
  await mkdir(dirname(pointer), { recursive: true });
  await rm(pointer, { force: true });
  await symlink(relative(dirname(pointer), blob), pointer);
}

/** A body that broke off or stalled: the partial file is kept, and the download may resume it. */
class BrokenBody extends Error {}

/**
 * Fetch a file's body into `incomplete`, resuming what is there with a Range request. Never writes more than
 * the announced `size`; a partial file already complete (killed during the hash) is not asked for again, and
 * one larger than the file, or one the server will not resume (416), is started over.
 */
async function fetchBody(url: string, what: string, incomplete: string, file: string, size: number | undefined, options: HubOptions) {
  let have = (await exists(incomplete)) ? (await stat(incomplete)).size : 0;
  if (size !== undefined && have > size) {
    await rm(incomplete, { force: true });
    have = 0;
  }
  if (size !== undefined && have === size) return;
  let answer = await request(url, what, { headers: have > 0 ? { range: `bytes=${have}-` } : {} }, options);
  if (answer.response.status === 416 && have > 0) {
    answer.idle.stop();
    await answer.response.body?.cancel();
    await rm(incomplete, { force: true });
    have = 0;
    answer = await request(url, what, {}, options);
  }
  const { response, idle } = answer;
  try {
    checkStatus(response, url, what);
  } catch (error) {
    idle.stop();
    throw error;
  }
  const resumed = response.status === 206 && have > 0;
  const from = resumed ? Number(/^bytes (\d+)-/.exec(response.headers.get("content-range") ?? "")?.[1]) : 0;
  if (resumed && from !== have) {
    idle.stop();
    await response.body?.cancel();
    await rm(incomplete, { force: true });
    throw new BrokenBody(
      `${what}: ${answer.url} answered a request for the bytes from ${have} with those from ${from}; the partial file was removed`,
    );
  }
  let done = resumed ? have : 0;
  options.onProgress?.(file, done, size);
  let tooLong = false;
  const counted = new Transform({
    transform(chunk: Buffer, _, next) {
      idle.kick();
      done += chunk.length;
      if (size !== undefined && done > size) {
        tooLong = true;
        return next(new Error(`more than the ${size} bytes announced`));
      }
      options.onProgress?.(file, done, size);
      next(null, chunk);
    },
  });
  try {
    await pipeline(Readable.fromWeb(response.body as never), counted, createWriteStream(incomplete, { flags: resumed ? "a" : "w" }));
  } catch (error) {
    if (tooLong) {
      await rm(incomplete, { force: true });
      throw new HubError(`${what}: ${answer.url} sent more than the ${size} bytes announced; the download was discarded`);
    }
    const why = idle.fired(error) ? `nothing for ${idle.ms / 1000} s` : (error as Error).message;
    throw new BrokenBody(`${what}: the download of ${answer.url} broke off after ${done} bytes (${why})`);
  } finally {
    idle.stop();
  }
  if (size !== undefined && done !== size) {
    await rm(incomplete, { force: true });
    throw new HubError(`${what}: received ${done} of ${size} bytes from ${answer.url}; the partial file was removed, run again`);
  }
}

/** The files a model needs besides its weights: config, tokenizer, chat template, generation config, index. */
const MODEL_FILES = new RegExp(
  String.raw`^(config\.json|generation_config\.json|tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json|` +
    String.raw`chat_template\.jinja|chat_template\.json|model\.safetensors\.index\.json)$`,
);

/**
 * A local model folder for `source`: the folder itself, or the cached Hub snapshot of `org/name`. From the
 * Hub, only the config and tokenizer files and the weights the checkpoint itself names are downloaded
 * (the shards of its index, or model.safetensors), not every *.safetensors of the repository.
 */
export async function resolveModel(source: string, options: HubOptions = {}): Promise<string> {
  if ((await exists(source)) || !looksLikeRepoId(source)) return source;
  try {
    const snapshot = await snapshotDownload("model", source, {
      ...options,
      filter: (f) => MODEL_FILES.test(f) || f === "model.safetensors",
    });
    if (options.offline ?? hubOffline()) return snapshot;
    const indexPath = join(snapshot, "model.safetensors.index.json");
    if (await exists(indexPath)) {
      const index = JSON.parse(await readFile(indexPath, "utf8")) as { weight_map?: Record<string, unknown> };
      const shards = new Set(Object.values(index.weight_map ?? {}).map((f) => checkRelativePath(f, `${indexPath}: weight_map`)));
      const commit = relative(join(snapshot, ".."), snapshot);
      if (shards.size > 0) await snapshotDownload("model", source, { ...options, revision: commit, filter: (f) => shards.has(f) });
    }
    return snapshot;
  } catch (error) {
    throw new HubError(`no local folder ${source}, and as a Hub model id: ${(error as Error).message}`);
  }
}

/** Data files of one split of a Hub dataset (parquet, jsonl, json or csv whose path names the split). */
export async function datasetSplitFiles(repo: string, split: string, options: HubOptions = {}): Promise<string[]> {
  const dataExt = /\.(parquet|jsonl|json|csv)$/;
  const matchesSplit = (path: string) =>
    dataExt.test(path) && new RegExp(`(^|[/_.-])${split.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}([/_.-]|$)`).test(path);
  const snapshot = await snapshotDownload("dataset", repo, { filter: matchesSplit, ...options });
  const files: string[] = [];
  const walk = async (dir: string) => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (matchesSplit(relative(snapshot, p))) files.push(p);
    }
  };
  await walk(snapshot);
  if (files.length === 0)
    throw new HubError(
      `dataset ${repo} has no data files for split "${split}" (looked for .parquet, .jsonl, .json or .csv files whose path names it)`,
    );
  return files.sort();
}
