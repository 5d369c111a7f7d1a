// npm run backend:tfjs-node (scripts/backend/tfjs-node.ts, tools/tfjs-node.ts): finding the TensorFlow wheel in a local pip
// mirror, unpacking what the binding needs, and never deleting a deps/ folder it did not write. The build
// itself (minutes of disk and compiler) runs in CI's TensorFlow step, not here.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, lstatSync, readFileSync, readlinkSync, realpathSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { clearDeps, fillDeps, findWheel, parsePipConfig, Skipped } from "../tools/tfjs-node.ts";

let work: string;
before(async () => {
  work = await mkdtemp(join(tmpdir(), "abliterate-backend-script-"));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

const PLATFORM = { x64: "x86_64", arm64: "aarch64" }[process.arch as string] ?? "x86_64";
const OTHER_PLATFORM = PLATFORM === "x86_64" ? "aarch64" : "x86_64";

/** A zip holding `members` (name -> text), written with Python's zipfile as wheels are. */
function writeZip(path: string, members: Record<string, string>): void {
  execFileSync(
    "python3",
    [
      "-c",
      "import json, sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], 'w') as z:\n" +
        "    for name, text in json.loads(sys.stdin.read()).items(): z.writestr(name, text)",
      path,
    ],
    { input: JSON.stringify(members) },
  );
}

const WHEEL_MEMBERS = {
  "tensorflow/libtensorflow_cc.so.2": "cc",
  "tensorflow/libtensorflow_framework.so.2": "framework",
  "tensorflow/include/tensorflow/c/c_api.h": "c_api",
  "tensorflow/include/tensorflow/c/eager/c_api.h": "eager",
  "tensorflow/include/tensorflow/core/platform/ctstring.h": "core ctstring",
  "tensorflow/include/tensorflow/core/platform/ctstring_internal.h": "core ctstring internal",
  "tensorflow/include/tensorflow/core/platform/env.h": "not needed",
  "tensorflow/include/tsl/platform/ctstring.h": "tsl ctstring",
  "tensorflow/include/xla/tsl/c/tsl_status.h": "tsl status",
  "tensorflow/python/not_needed.py": "",
};

describe("backend:tfjs-node finds the wheel", () => {
  it("reads the local folders of pip's configuration, network indexes left out", () => {
    const listing = [
      ":env:.find-links='/opt/wheels'",
      "global.find-links='/opt/wheels'",
      "global.extra-index-url='file:///opt/pypi/simple file:///opt/pypi-more/simple https://example.org/simple'",
      "global.index-url='https://pypi.org/simple'",
      "global.timeout='60'",
    ].join("\n");
    assert.deepEqual(parsePipConfig(listing), { findLinks: ["/opt/wheels"], indexes: ["/opt/pypi/simple", "/opt/pypi-more/simple"] });
    assert.deepEqual(parsePipConfig(""), { findLinks: [], indexes: [] });
  });

  it("takes the newest wheel for this platform from a find-links folder, then from a simple index", async () => {
    const folder = join(work, "wheels");
    await mkdir(folder);
    for (const name of [
      `tensorflow_cpu-2.9.0-cp311-cp311-manylinux_2_17_${PLATFORM}.whl`,
      `tensorflow_cpu-2.10.1-cp310-cp310-manylinux_2_27_${PLATFORM}.whl`,
      `tensorflow_cpu-2.30.0-cp311-cp311-manylinux_2_27_${OTHER_PLATFORM}.whl`,
      `tensorflow_cpu-2.31.0-cp311-cp311-macosx_12_0_arm64.whl`,
      `tensorflow_cpu_aws-2.40.0-cp311-cp311-manylinux_2_27_${PLATFORM}.whl`,
    ])
      await writeFile(join(folder, name), "");
    const found = findWheel(undefined, ["tensorflow-cpu"], () => ({ findLinks: [folder], indexes: [] }));
    assert.equal(found.wheel, join(folder, `tensorflow_cpu-2.10.1-cp310-cp310-manylinux_2_27_${PLATFORM}.whl`));
    assert.match(found.from, /find-links/);

    const index = join(work, "simple");
    const files = join(work, "files");
    await mkdir(join(index, "tensorflow"), { recursive: true });
    await mkdir(files);
    const wheel = `tensorflow-2.21.0-cp311-cp311-manylinux_2_27_${PLATFORM}.whl`;
    await writeFile(join(files, wheel), "");
    await writeFile(
      join(index, "tensorflow", "index.html"),
      `<html><body><a href="../../files/${wheel}#sha256=00">${wheel}</a></body></html>`,
    );
    const fromIndex = findWheel(undefined, ["tensorflow"], () => ({ findLinks: [folder], indexes: [index] }));
    assert.equal(fromIndex.wheel, join(files, wheel));
    assert.match(fromIndex.from, /index/);
    // Projects are tried in order: the CPU build first where both are there.
    const preferred = findWheel(undefined, ["tensorflow-cpu", "tensorflow"], () => ({ findLinks: [folder], indexes: [index] }));
    assert.match(preferred.wheel, /tensorflow_cpu-2\.10\.1/);
  });

  it("skips, saying where it looked, when no wheel is there; a wheel named that is not there is an error", async () => {
    const empty = join(work, "empty");
    await mkdir(empty);
    assert.throws(
      () => findWheel(undefined, ["tensorflow-cpu"], () => ({ findLinks: [empty, join(work, "absent")], indexes: [] })),
      (error: Error) =>
        error instanceof Skipped &&
        error.message.includes(`looked in pip's ${empty}, ${join(work, "absent")}`) &&
        /pass --wheel PATH or set ABLITERATE_TF_WHEEL/.test(error.message),
    );
    assert.throws(
      () => findWheel(undefined, ["tensorflow-cpu"], () => ({ findLinks: [], indexes: [] })),
      /which names no local folder or file:\/\/ index/,
    );
    assert.throws(
      () => findWheel(join(work, "nowhere.whl"), ["tensorflow-cpu"]),
      (error: Error) =>
        !(error instanceof Skipped) && error.message.includes(`the TensorFlow wheel ${join(work, "nowhere.whl")} does not exist`),
    );
    assert.throws(() => findWheel(empty, ["tensorflow-cpu"]), new RegExp(`the TensorFlow wheel ${empty} is not a file`));
    const saved = process.env.ABLITERATE_TF_WHEEL;
    process.env.ABLITERATE_TF_WHEEL = join(work, "from-env.whl");
    try {
      assert.throws(() => findWheel(undefined, ["tensorflow-cpu"]), /from-env\.whl does not exist/);
    } finally {
      if (saved === undefined) delete process.env.ABLITERATE_TF_WHEEL;
      else process.env.ABLITERATE_TF_WHEEL = saved;
    }
  });
});

describe("backend:tfjs-node unpacks the wheel", () => {
  it("puts the two libraries, the links the binding needs and only the headers it includes into deps/", async () => {
    const wheel = join(work, "fake.whl");
    writeZip(wheel, WHEEL_MEMBERS);
    const deps = join(work, "deps");
    fillDeps(wheel, deps, "libtensorflow.so.2.9.1");
    const lib = join(deps, "lib");
    assert.deepEqual((await readdir(lib)).sort(), [
      "libtensorflow.so",
      "libtensorflow.so.2.9.1",
      "libtensorflow_cc.so.2",
      "libtensorflow_framework.so",
      "libtensorflow_framework.so.2",
    ]);
    assert.equal(readlinkSync(join(lib, "libtensorflow.so")), "libtensorflow_cc.so.2");
    assert.equal(readlinkSync(join(lib, "libtensorflow.so.2.9.1")), "libtensorflow_cc.so.2");
    assert.equal(readlinkSync(join(lib, "libtensorflow_framework.so")), "libtensorflow_framework.so.2");
    assert.equal(readFileSync(join(lib, "libtensorflow.so"), "utf8"), "cc");
    const headers = {
      "include/tensorflow/c/c_api.h": "c_api",
      "include/tensorflow/c/eager/c_api.h": "eager",
      "include/tensorflow/core/platform/ctstring.h": "core ctstring",
      "include/tensorflow/core/platform/ctstring_internal.h": "core ctstring internal",
      "include/tsl/platform/ctstring.h": "tsl ctstring",
      "include/xla/tsl/c/tsl_status.h": "tsl status",
    };
    for (const [path, text] of Object.entries(headers)) assert.equal(readFileSync(join(deps, path), "utf8"), text, path);
    assert.equal(existsSync(join(deps, "include/tensorflow/core/platform/env.h")), false, "a header the binding does not include");
  });

  it("names the wheel and what it lacks when it is not a TensorFlow wheel", async () => {
    const noFramework = join(work, "no-framework.whl");
    const { ["tensorflow/libtensorflow_framework.so.2"]: _, ...rest } = WHEEL_MEMBERS;
    writeZip(noFramework, rest);
    assert.throws(
      () => fillDeps(noFramework, join(work, "deps-a"), "libtensorflow.so.2.9.1"),
      new RegExp(`the wheel ${noFramework} has no tensorflow/libtensorflow_framework\\.so\\.2`),
    );
    const noHeaders = join(work, "no-headers.whl");
    writeZip(noHeaders, { "tensorflow/libtensorflow_cc.so.2": "", "tensorflow/libtensorflow_framework.so.2": "" });
    assert.throws(() => fillDeps(noHeaders, join(work, "deps-b"), "x"), /has no headers under tensorflow\/include\/tensorflow\/c\//);
    const notZip = join(work, "not-a-zip.whl");
    await writeFile(notZip, "plain text");
    assert.throws(
      () => fillDeps(notZip, join(work, "deps-c"), "x"),
      new RegExp(`the wheel ${notZip} cannot be read as a zip file: File is not a zip file`),
    );
    assert.equal(existsSync(join(work, "deps-a")), false, "nothing is written before the wheel is checked");
  });
});

describe("backend:tfjs-node keeps what was there", () => {
  it("removes only its own deps/ or an empty one; moves any other aside, through a link too", async () => {
    const own = join(work, "own-deps");
    await mkdir(join(own, "lib"), { recursive: true });
    await writeFile(join(own, "abliterate-wheel.json"), "{}");
    await writeFile(join(own, "lib", "libtensorflow_cc.so.2"), "x");
    assert.equal(clearDeps(own), undefined);
    assert.equal(existsSync(own), false);

    const empty = join(work, "failed-download-deps");
    await mkdir(join(empty, "lib"), { recursive: true });
    assert.equal(clearDeps(empty), undefined);
    assert.equal(existsSync(empty), false);

    const theirs = join(work, "downloaded-deps");
    await mkdir(join(theirs, "lib"), { recursive: true });
    await writeFile(join(theirs, "lib", "libtensorflow.so.2.9.1"), "downloaded");
    const aside = clearDeps(theirs)!;
    assert.match(aside, /downloaded-deps\.before-/);
    assert.equal(existsSync(theirs), false);
    assert.equal(readFileSync(join(aside, "lib", "libtensorflow.so.2.9.1"), "utf8"), "downloaded");

    const target = join(work, "users-own-libtensorflow");
    await mkdir(target);
    await writeFile(join(target, "libtensorflow.so"), "mine");
    const linked = join(work, "linked-deps");
    await symlink(target, linked);
    const linkAside = clearDeps(linked)!;
    assert.ok(lstatSync(linkAside).isSymbolicLink(), "the link itself is moved");
    assert.equal(realpathSync(linkAside), realpathSync(target));
    assert.equal(readFileSync(join(target, "libtensorflow.so"), "utf8"), "mine");
  });
});

describe("backend:tfjs-node on the command line", () => {
  const run = (args: string[]) =>
    spawnSync(process.execPath, ["--import", "tsx", "scripts/backend/tfjs-node.ts", ...args], { encoding: "utf8" });

  it("refuses an unknown package and a wheel that is not there, with status 1", () => {
    const bad = run(["--package", "node-tpu"]);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /--package must be node or node-gpu, got "node-tpu"/);
    const missing = run(["--force", "--wheel", join(work, "missing.whl")]);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, new RegExp(`failed: the TensorFlow wheel ${join(work, "missing.whl")} does not exist`));
  });

  it("skips with status 2, saying why, where pip names no local wheel", () => {
    const env: Record<string, string | undefined> = { PIP_CONFIG_FILE: "/dev/null", ABLITERATE_TF_WHEEL: undefined };
    for (const key of Object.keys(process.env)) if (key.startsWith("PIP_") && key !== "PIP_CONFIG_FILE") env[key] = undefined;
    const skipped = spawnSync(process.execPath, ["--import", "tsx", "scripts/backend/tfjs-node.ts", "--force"], {
      encoding: "utf8",
      env: Object.fromEntries(Object.entries({ ...process.env, ...env }).filter(([, v]) => v !== undefined)) as NodeJS.ProcessEnv,
    });
    assert.equal(skipped.status, 2, skipped.stderr);
    assert.match(skipped.stdout, /skipped: no tensorflow-cpu or tensorflow wheel for linux/);
  });
});
