// Models and datasets from the Hugging Face Hub, in the hub's standard cache layout, so files
// downloaded here and by Python's huggingface_hub are shared:
//   $HF_HUB_CACHE (default $HF_HOME/hub, default ~/.cache/huggingface/hub)
//     models--org--name/ (datasets--org--name/)
//       refs/main                      the commit a branch or tag points to
//       blobs/<etag>                   file contents
//       snapshots/<commit>/<path>      symlinks to blobs
// HF_HUB_OFFLINE=1 resolves everything from the cache and never touches the network; HF_ENDPOINT
// replaces https://huggingface.co; HF_TOKEN is sent when set.
// Written with fetch rather than @huggingface/hub because that library's cache writes no refs/,
// so a branch name could never be resolved offline.
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, symlink, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join, relative } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { exists } from "./files.ts";

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

/** `org/name`: a Hub repository id rather than a local path. */
export function looksLikeRepoId(source: string): boolean {
  return /^[\w.-]+\/[\w.-]+$/.test(source) && !source.startsWith(".") && !source.includes("..");
}

const repoFolder = (type: RepoType, repo: string) => `${type}s--${repo.replace(/\//g, "--")}`;
const isCommit = (rev: string) => /^[0-9a-f]{40}$/.test(rev);

function authHeaders(): Record<string, string> {
  const token = process.env.HF_TOKEN ?? process.env.HUGGING_FACE_HUB_TOKEN;
  return token ? { authorization: `Bearer ${token}` } : {};
}

async function fetchOk(url: string, what: string): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(url, { headers: authHeaders(), redirect: "follow" });
  } catch (error) {
    throw new HubError(`${what}: cannot reach ${url} (${(error as Error).cause ?? (error as Error).message}); offline? set HF_HUB_OFFLINE=1 to use the cache only`);
  }
  if (response.status === 401 || response.status === 403) throw new HubError(`${what}: ${url} answered ${response.status}; a gated or private repository needs HF_TOKEN`);
  if (response.status === 404) throw new HubError(`${what}: ${url} answered 404; check the repository id, type and revision`);
  if (!response.ok) throw new HubError(`${what}: ${url} answered ${response.status} ${response.statusText}`);
  return response;
}

/**
 * Download a repository snapshot (or the files `filter` keeps) into the cache and return the
 * snapshot folder. With HF_HUB_OFFLINE=1, return the cached snapshot or fail saying what is missing.
 */
export async function snapshotDownload(type: RepoType, repo: string, options: HubOptions = {}): Promise<string> {
  const revision = options.revision ?? "main";
  const storage = join(options.cacheDir ?? hubCacheDir(), repoFolder(type, repo));
  const offline = options.offline ?? hubOffline();
  if (offline) {
    const refPath = join(storage, "refs", revision);
    const commit = isCommit(revision) ? revision : (await exists(refPath)) ? (await readFile(refPath, "utf8")).trim() : undefined;
    const snapshot = commit ? join(storage, "snapshots", commit) : undefined;
    if (!snapshot || !(await exists(snapshot))) throw new HubError(`${type} ${repo}@${revision} is not in the cache ${storage} and HF_HUB_OFFLINE=1 forbids downloading it`);
    return snapshot;
  }
  const endpoint = (options.endpoint ?? hubEndpoint()).replace(/\/+$/, "");
  const api = `${endpoint}/api/${type}s/${repo}/revision/${encodeURIComponent(revision)}`;
  const info = (await (await fetchOk(api, `${type} ${repo}`)).json()) as { sha?: string; siblings?: { rfilename: string }[] };
  if (!info.sha || !Array.isArray(info.siblings)) throw new HubError(`${api}: the answer has no sha or siblings`);
  const commit = info.sha;
  const snapshot = join(storage, "snapshots", commit);
  const files = info.siblings.map((s) => s.rfilename).filter((f) => (options.filter ? options.filter(f) : true));
  if (files.length === 0) throw new HubError(`${type} ${repo}@${revision} has no files to download${options.filter ? " that match" : ""}`);
  const prefix = type === "dataset" ? "datasets/" : "";
  for (const file of files) {
    const pointer = join(snapshot, file);
    if (await exists(pointer)) continue;
    const url = `${endpoint}/${prefix}${repo}/resolve/${commit}/${file.split("/").map(encodeURIComponent).join("/")}`;
    const response = await fetchOk(url, `${type} ${repo}: ${file}`);
    const etag = (response.headers.get("x-linked-etag") ?? response.headers.get("etag") ?? "").replace(/^W\//, "").replace(/"/g, "");
    const total = Number(response.headers.get("content-length")) || undefined;
    await mkdir(join(storage, "blobs"), { recursive: true });
    const incomplete = join(storage, "blobs", `download-${process.pid}-${Date.now()}.incomplete`);
    const hash = createHash("sha256");
    let done = 0;
    const counted = Readable.fromWeb(response.body as never).map((chunk: Buffer) => {
      done += chunk.length;
      hash.update(chunk);
      options.onProgress?.(file, done, total);
      return chunk;
    });
    try {
      await pipeline(counted, createWriteStream(incomplete));
      if (total !== undefined && done !== total) throw new HubError(`${url}: received ${done} of ${total} bytes`);
      const blob = join(storage, "blobs", etag || hash.digest("hex"));
      await rename(incomplete, blob);
      await mkdir(dirname(pointer), { recursive: true });
      await rm(pointer, { force: true });
      await symlink(relative(dirname(pointer), blob), pointer);
    } finally {
      await rm(incomplete, { force: true });
    }
  }
  if (!isCommit(revision)) {
    await mkdir(join(storage, "refs", dirname(revision)), { recursive: true });
    await writeFile(join(storage, "refs", revision), commit);
  }
  return snapshot;
}

/** The files a model needs: config, tokenizer, generation config, safetensors weights and index. */
export const MODEL_FILES = (path: string) => /^(config\.json|generation_config\.json|tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json|model\.safetensors\.index\.json|[^/]*\.safetensors)$/.test(path);

/** A local model folder for `source`: the folder itself, or the cached Hub snapshot of `org/name`. */
export async function resolveModel(source: string, options: HubOptions = {}): Promise<string> {
  if ((await exists(source)) || !looksLikeRepoId(source)) return source;
  try {
    return await snapshotDownload("model", source, { filter: MODEL_FILES, ...options });
  } catch (error) {
    throw new HubError(`no local folder ${source}, and as a Hub model id: ${(error as Error).message}`);
  }
}

/** Data files of one split of a Hub dataset (parquet, jsonl, json or csv whose path names the split). */
export async function datasetSplitFiles(repo: string, split: string, options: HubOptions = {}): Promise<string[]> {
  const dataExt = /\.(parquet|jsonl|json|csv)$/;
  const matchesSplit = (path: string) => dataExt.test(path) && new RegExp(`(^|[/_.-])${split}([/_.-]|$)`).test(path);
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
  if (files.length === 0) throw new HubError(`dataset ${repo} has no data files for split "${split}" (looked for .parquet, .jsonl, .json or .csv files whose path names it)`);
  return files.sort();
}
