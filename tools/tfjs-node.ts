// Building TensorFlow's native binding for tfjs (@tensorflow/tfjs-node, or @tensorflow/tfjs-node-gpu)
// without the download its install script makes: the shared libraries and C headers come from a TensorFlow
// Python wheel (a local file, or the one a local pip mirror holds), and the binding is compiled from source
// against them. Used by scripts/backend/tfjs-node.ts (npm run backend:tfjs-node) and
// scripts/backend/gpu-check.ts. Nothing the user had is deleted: a deps/ folder that this did not write is
// moved aside.
import { execFileSync, spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import {
  copyFileSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { PACKAGE_ROOT } from "../src/paths.ts";

export type BindingPackage = "node" | "node-gpu";
export const NPM_NAME: Record<BindingPackage, string> = { node: "@tensorflow/tfjs-node", "node-gpu": "@tensorflow/tfjs-node-gpu" };
/** Written into deps/ by this script: a deps/ folder without it came from elsewhere (a download) and is kept. */
const MARKER = "abliterate-wheel.json";
/** What a wheel must hold, as [member or member prefix, destination under deps/]. */
const LIBRARIES = ["libtensorflow_cc.so.2", "libtensorflow_framework.so.2"];
const HEADER_TREES: [string, string][] = [
  ["tensorflow/include/tensorflow/c/", "include/tensorflow/c/"],
  ["tensorflow/include/tensorflow/core/platform/ctstring", "include/tensorflow/core/platform/ctstring"],
  ["tensorflow/include/tsl/platform/ctstring", "include/tsl/platform/ctstring"],
  ["tensorflow/include/xla/tsl/c/", "include/xla/tsl/c/"],
];

export class Skipped extends Error {}

const require = createRequire(import.meta.url);

export const say = (line: string) => console.log(`backend:tfjs-node: ${line}`);

/** The folder of an installed npm package, or undefined. */
export function packageDir(pkg: BindingPackage): string | undefined {
  const dir = join(PACKAGE_ROOT, "node_modules", NPM_NAME[pkg]);
  return existsSync(join(dir, "package.json")) ? dir : undefined;
}

/** The version package-lock.json pins for the package (the one package.json's range resolved to). */
export function lockedVersion(pkg: BindingPackage): string {
  const lock = JSON.parse(readFileSync(join(PACKAGE_ROOT, "package-lock.json"), "utf8"));
  const version = lock.packages?.[`node_modules/${NPM_NAME[pkg]}`]?.version;
  if (!version)
    throw new Error(`package-lock.json has no entry node_modules/${NPM_NAME[pkg]}: run npm install on a machine with the registry`);
  return version;
}

/** Whether the package loads and runs the tensorflow backend, with TensorFlow's version; the reason when not. */
export function probe(pkg: BindingPackage): { ok: true; tfVersion: string; stderr: string } | { ok: false; reason: string } {
  const script =
    `const tf = require(${JSON.stringify(NPM_NAME[pkg])});` +
    `const y = tf.matMul(tf.ones([2, 2]), tf.ones([2, 2])).dataSync();` +
    `if (tf.getBackend() !== "tensorflow" || y[0] !== 2) throw new Error("backend " + tf.getBackend() + " computed " + y[0]);` +
    `console.log(JSON.stringify({ tf: tf.backend().binding.TF_Version }));`;
  const result = spawnSync(process.execPath, ["-e", script], { cwd: PACKAGE_ROOT, encoding: "utf8", env: process.env });
  if (result.status === 0) {
    const last = result.stdout.trim().split("\n").at(-1) ?? "{}";
    return { ok: true, tfVersion: JSON.parse(last).tf, stderr: result.stderr };
  }
  const lines = (result.stderr || result.stdout).split("\n").filter((l) => /^\w*Error: /.test(l.trim()));
  return { ok: false, reason: lines[0]?.trim() ?? `exit status ${result.status}` };
}

export interface PipLocations {
  /** Folders of wheels (find-links). */
  findLinks: string[];
  /** Folders of simple indexes (file:// index-url, extra-index-url). */
  indexes: string[];
}

/** The local folders in `pip config list`'s output; network indexes are left out (this is for offline machines). */
export function parsePipConfig(listing: string): PipLocations {
  const findLinks: string[] = [];
  const indexes: string[] = [];
  for (const line of listing.split("\n")) {
    const match = /^[^=]*\.(find-links|index-url|extra-index-url)='(.*)'$/.exec(line.trim());
    if (!match) continue;
    for (const value of match[2].split(/\s+/).filter(Boolean)) {
      const path = value.startsWith("file://") ? fileURLToPath(value) : value.includes("://") ? undefined : value;
      if (path !== undefined) (match[1] === "find-links" ? findLinks : indexes).push(path);
    }
  }
  return { findLinks: [...new Set(findLinks)], indexes: [...new Set(indexes)] };
}

/** pip's configured find-links folders and file:// indexes (`pip config list`, its environment variables included). */
function pipLocations(): PipLocations {
  for (const pip of ["pip3", "pip"]) {
    try {
      return parsePipConfig(execFileSync(pip, ["config", "list"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }));
    } catch {
      continue; // not installed under this name
    }
  }
  return { findLinks: [], indexes: [] };
}

const WHEEL_PLATFORM: Record<string, string> = { x64: "x86_64", arm64: "aarch64" };

/** TensorFlow wheels for this machine's platform in a folder listing or a simple-index page, newest first. */
function wheelsIn(names: string[], project: string): string[] {
  const platform = WHEEL_PLATFORM[process.arch];
  const pattern = new RegExp(`^${project.replace("-", "_")}-(\\d+(?:\\.\\d+)*)-[^-]+-[^-]+-manylinux[^-]*_${platform}\\.whl$`);
  const version = (name: string) => pattern.exec(name.split("/").at(-1)!)![1].split(".").map(Number);
  return names
    .filter((name) => pattern.test(name.split("/").at(-1)!))
    .sort((a, b) => {
      const [va, vb] = [version(a), version(b)];
      for (let i = 0; i < Math.max(va.length, vb.length); i++) if ((va[i] ?? 0) !== (vb[i] ?? 0)) return (vb[i] ?? 0) - (va[i] ?? 0);
      return 0;
    });
}

/**
 * The TensorFlow wheel to take the libraries from: the one named (option or ABLITERATE_TF_WHEEL), else the
 * newest for this platform in pip's local mirror (find-links folders, then file:// simple indexes).
 * `projects` is the PyPI names to look for, in order of preference.
 */
export function findWheel(
  named: string | undefined,
  projects: string[],
  locations: () => PipLocations = pipLocations,
): { wheel: string; from: string } {
  const given = named ?? process.env.ABLITERATE_TF_WHEEL;
  if (given) {
    const path = resolve(given);
    if (!existsSync(path)) throw new Error(`the TensorFlow wheel ${path} does not exist`);
    if (!statSync(path).isFile()) throw new Error(`the TensorFlow wheel ${path} is not a file`);
    return { wheel: path, from: named ? "--wheel" : "ABLITERATE_TF_WHEEL" };
  }
  if (process.platform !== "linux" || !WHEEL_PLATFORM[process.arch])
    throw new Skipped(`the wheel route covers Linux on x86_64 and aarch64 only (this is ${process.platform} ${process.arch})`);
  const { findLinks, indexes } = locations();
  for (const project of projects) {
    for (const folder of findLinks) {
      if (!existsSync(folder) || !statSync(folder).isDirectory()) continue;
      const found = wheelsIn(readdirSync(folder), project)[0];
      if (found) return { wheel: join(folder, found), from: `pip's find-links ${folder}` };
    }
    for (const index of indexes) {
      const page = join(index, project, "index.html");
      if (!existsSync(page)) continue;
      const hrefs = [...readFileSync(page, "utf8").matchAll(/href="([^"#]+)(?:#[^"]*)?"/g)].map((m) => m[1]);
      const found = wheelsIn(hrefs, project)[0];
      if (found) {
        const wheel = fileURLToPath(new URL(found, pathToFileURL(page)));
        if (existsSync(wheel)) return { wheel, from: `pip's index ${index}` };
      }
    }
  }
  const looked = [...findLinks, ...indexes];
  throw new Skipped(
    `no ${projects.join(" or ")} wheel for ${process.platform} ${process.arch} was found (looked in pip's ` +
      `${looked.length ? looked.join(", ") : "configuration, which names no local folder or file:// index"}); ` +
      `pass --wheel PATH or set ABLITERATE_TF_WHEEL`,
  );
}

/** The wheel's members this needs, checked present, as [member, path under deps/]. */
function membersToExtract(wheel: string): [string, string][] {
  const list =
    "import json, sys, zipfile\n" +
    "try: names = zipfile.ZipFile(sys.argv[1]).namelist()\n" +
    "except (zipfile.BadZipFile, OSError) as e: sys.exit(str(e))\n" +
    "print(json.dumps(names))\n";
  const result = spawnSync("python3", ["-c", list, wheel], { encoding: "utf8", maxBuffer: 256 * 1024 ** 2 });
  if (result.error) throw new Error(`python3 is needed to read the wheel (node-gyp needs it too): ${result.error.message}`);
  if (result.status !== 0) throw new Error(`the wheel ${wheel} cannot be read as a zip file: ${result.stderr.trim()}`);
  const listing = result.stdout;
  const names: string[] = JSON.parse(listing);
  const wanted: [string, string][] = [];
  for (const library of LIBRARIES) {
    if (!names.includes(`tensorflow/${library}`))
      throw new Error(`the wheel ${wheel} has no tensorflow/${library}: it is not a TensorFlow 2 wheel for Linux`);
    wanted.push([`tensorflow/${library}`, `lib/${library}`]);
  }
  for (const [prefix, destination] of HEADER_TREES) {
    const members = names.filter((n) => n.startsWith(prefix) && !n.endsWith("/"));
    if (members.length === 0) throw new Error(`the wheel ${wheel} has no headers under ${prefix}`);
    for (const member of members) wanted.push([member, destination + member.slice(prefix.length)]);
  }
  return wanted;
}

/** Unpacks the libraries and headers into `deps` (a new folder) and makes the links the binding links against. */
export function fillDeps(wheel: string, deps: string, libtensorflowName: string): void {
  const members = membersToExtract(wheel);
  const extract =
    "import json, shutil, sys, zipfile, os\n" +
    "z = zipfile.ZipFile(sys.argv[1])\n" +
    "for member, dest in json.loads(sys.stdin.read()):\n" +
    "    path = os.path.join(sys.argv[2], dest)\n" +
    "    os.makedirs(os.path.dirname(path), exist_ok=True)\n" +
    "    with z.open(member) as src, open(path, 'wb') as out: shutil.copyfileobj(src, out, 1 << 22)\n";
  execFileSync("python3", ["-c", extract, wheel, deps], { input: JSON.stringify(members), stdio: ["pipe", "inherit", "inherit"] });
  const lib = join(deps, "lib");
  symlinkSync("libtensorflow_cc.so.2", join(lib, "libtensorflow.so"));
  symlinkSync("libtensorflow_framework.so.2", join(lib, "libtensorflow_framework.so"));
  // The name the package's install script checks for (its pinned libtensorflow version), so that a later
  // `npm rebuild` finds the libraries in place instead of downloading them.
  if (libtensorflowName !== "libtensorflow.so") symlinkSync("libtensorflow_cc.so.2", join(lib, libtensorflowName));
}

/** Whether a folder holds no file at any depth (what a failed download leaves). */
function holdsNoFile(dir: string): boolean {
  return readdirSync(dir).every((name) => {
    const stat = lstatSync(join(dir, name));
    return stat.isDirectory() && holdsNoFile(join(dir, name));
  });
}

/**
 * Makes room for a new deps/ folder: one this script wrote (it holds the marker) or one without a file is
 * removed; any other (a downloaded libtensorflow, the user's own build) is moved aside, never deleted.
 * Returns where it was moved, if it was.
 */
export function clearDeps(deps: string): string | undefined {
  if (!existsSync(deps)) return undefined;
  if (existsSync(join(deps, MARKER)) || (lstatSync(deps).isDirectory() && holdsNoFile(deps))) {
    rmSync(deps, { recursive: true, force: true });
    return undefined;
  }
  const aside = `${deps}.before-${new Date().toISOString().replace(/[:.]/g, "-")}`;
  renameSync(deps, aside);
  return aside;
}

/** Makes `deps` hold the same files as `from` (hard links where the file system allows, else copies). */
function linkDeps(from: string, deps: string): void {
  const walk = (dir: string) => {
    for (const name of readdirSync(join(from, dir))) {
      const source = join(from, dir, name);
      const target = join(deps, dir, name);
      const stat = lstatSync(source);
      if (stat.isDirectory()) {
        mkdirSync(target, { recursive: true });
        walk(join(dir, name));
      } else if (stat.isSymbolicLink()) symlinkSync(readlinkSync(source), target);
      else {
        try {
          linkSync(source, target);
        } catch {
          copyFileSync(source, target);
        }
      }
    }
  };
  mkdirSync(deps, { recursive: true });
  walk(".");
}

/** The prefix holding Node's headers (include/node), so that node-gyp needs no download; undefined if absent. */
function nodeHeadersDir(): string | undefined {
  const prefix = dirname(dirname(process.execPath));
  return existsSync(join(prefix, "include", "node", "node_api.h")) ? prefix : undefined;
}

export interface InstallOptions {
  pkg: BindingPackage;
  wheel?: string;
  /** PyPI projects to look for in the mirror, in order. */
  projects: string[];
  force?: boolean;
  /** deps/ of another binding package already filled from the same wheel, to link instead of unpacking again. */
  shareDepsFrom?: string;
}

/** Installs (without scripts), fills deps/ from the wheel and builds the binding; returns TensorFlow's version. */
export function installFromWheel(options: InstallOptions): string {
  const { pkg } = options;
  const name = NPM_NAME[pkg];
  if (!options.force && packageDir(pkg)) {
    const before = probe(pkg);
    if (before.ok) {
      say(`${name} already loads (TensorFlow ${before.tfVersion}); nothing to do (--force rebuilds it)`);
      return before.tfVersion;
    }
  }
  const { wheel, from } = findWheel(options.wheel, options.projects);
  say(`TensorFlow wheel: ${wheel} (from ${from})`);
  if (!packageDir(pkg)) {
    const version = lockedVersion(pkg);
    say(`installing ${name}@${version} without its install script (which downloads libtensorflow)`);
    execFileSync("npm", ["install", "--no-save", "--ignore-scripts", "--no-audit", "--no-fund", `${name}@${version}`], {
      cwd: PACKAGE_ROOT,
      stdio: "inherit",
    });
  }
  const dir = packageDir(pkg)!;
  const constants = require(join(dir, "scripts", "deps-constants.js")) as { depsPath: string; depsLibTensorFlowName: string };
  const deps = constants.depsPath;
  const aside = clearDeps(deps);
  if (aside) say(`moved the deps/ folder that was there (not written by this script) to ${aside}`);
  const partial = `${deps}.partial`;
  rmSync(partial, { recursive: true, force: true });
  if (options.shareDepsFrom && existsSync(join(options.shareDepsFrom, MARKER))) {
    say(`linking the libraries and headers of ${options.shareDepsFrom}`);
    linkDeps(options.shareDepsFrom, partial);
  } else {
    say(`unpacking libtensorflow and its C headers into ${deps}`);
    fillDeps(wheel, partial, constants.depsLibTensorFlowName);
  }
  writeFileSync(join(partial, MARKER), JSON.stringify({ wheel, from, written: new Date().toISOString() }, null, 2) + "\n");
  renameSync(partial, deps);

  const headers = nodeHeadersDir();
  if (!headers) say(`Node's headers are not under ${dirname(dirname(process.execPath))}/include/node: node-gyp will try to download them`);
  say(`building the binding from source (node-pre-gyp, node-gyp${headers ? `, Node headers from ${headers}` : ""})`);
  const preGyp = require.resolve("@mapbox/node-pre-gyp/bin/node-pre-gyp", { paths: [dir] });
  execFileSync(process.execPath, [preGyp, "install", "--build-from-source", ...(headers ? [`--nodedir=${headers}`] : [])], {
    cwd: dir,
    stdio: ["ignore", "ignore", "inherit"],
  });
  const after = probe(pkg);
  if (!after.ok) throw new Error(`${name} was built but does not load: ${after.reason}`);
  return after.tfVersion;
}
