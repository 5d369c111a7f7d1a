// What --force may replace (#23 items 2 and 3): only an export of this tool or an empty folder, never a file of
// the source (through links), never the Hub cache, and never through a link.
import assert from "node:assert/strict";
import { cp, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { exportAbliterated, exportGguf, openCheckpoint, runHealing, runPipeline, unitVector } from "../src/index.ts";
import { withByteTokenizer } from "./helpers/gguf.ts";
import { modelDir, reference } from "./helpers/reference.ts";

let work: string;
const unit = unitVector(reference("llama").direction);

before(async () => {
  work = await mkdtemp(join(tmpdir(), "abliterate-force-"));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A source folder whose files are links into `real/`, as a Hub snapshot's are into its blobs. */
async function linkedSource(name: string): Promise<{ src: string; real: string }> {
  const real = join(work, name, "real");
  const src = join(work, name, "src");
  await withByteTokenizer(modelDir("llama"), real, 300);
  await mkdir(src, { recursive: true });
  for (const f of await readdir(real)) await symlink(join(real, f), join(src, f));
  return { src, real };
}

describe("--force replaces only what this tool wrote (#23 item 2)", () => {
  it("a folder of other files is refused, naming it, and keeps every file", async () => {
    const project = join(work, "myproject");
    await mkdir(join(project, "src"), { recursive: true });
    await writeFile(join(project, "important.txt"), "keep me");
    await writeFile(join(project, "src", "main.c"), "int main() {}");
    await assert.rejects(
      exportAbliterated(modelDir("llama"), project, unit, { force: true }),
      /output folder .*myproject is not empty and is not an export of this tool \(it has no abliterate\.json\)/,
    );
    assert.equal(await readFile(join(project, "important.txt"), "utf8"), "keep me");
    assert.equal(await readFile(join(project, "src", "main.c"), "utf8"), "int main() {}");
  });

  it("an earlier export, or an empty folder, is replaced", async () => {
    const out = join(work, "export");
    await exportAbliterated(modelDir("llama"), out, unit);
    const again = await exportAbliterated(modelDir("llama"), out, unit, { force: true, scale: 0.5 });
    assert.equal(again.outDir.endsWith("export"), true);
    assert.equal(JSON.parse(await readFile(join(out, "abliterate.json"), "utf8")).scale, 0.5);
    const empty = join(work, "empty");
    await mkdir(empty);
    await exportAbliterated(modelDir("llama"), empty, unit, { force: true });
  });
});

describe("--force never reaches the source through links, nor the Hub cache (#23 item 3)", () => {
  it("an output folder holding the files a linked source points to is refused; the source still loads", async () => {
    const { src, real } = await linkedSource("folder");
    await writeFile(join(real, "abliterate.json"), "{}"); // even a folder that looks like an export
    await assert.rejects(exportAbliterated(src, real, unit, { force: true }), /holds .*real\/.*, a file of the source checkpoint/);
    const checkpoint = await openCheckpoint(src);
    await checkpoint.close();
  });

  it("a GGUF file over a file the source links to is refused", async () => {
    const { src, real } = await linkedSource("gguf");
    const weights = join(real, "model.safetensors");
    const before = await readFile(weights);
    await assert.rejects(exportGguf(src, weights, { force: true }), /a file of the source checkpoint/);
    assert.deepEqual(await readFile(weights), before);
  });

  it("a GGUF output that is a link is refused, and what it points to is untouched", async () => {
    const target = join(work, "elsewhere.txt");
    await writeFile(target, "not a model");
    const link = join(work, "link.gguf");
    await symlink(target, link);
    await assert.rejects(exportGguf(modelDir("llama"), link, { force: true }), /link\.gguf is a link \(to .*elsewhere\.txt\)/);
    assert.equal(await readFile(target, "utf8"), "not a model");
  });

  it("an output inside the Hub cache, or containing it, is refused", async () => {
    const cache = join(work, "hf", "hub");
    const blobs = join(cache, "models--o--m", "blobs");
    await mkdir(blobs, { recursive: true });
    await cp(join(modelDir("llama"), "model.safetensors"), join(blobs, "abc"));
    const saved = process.env.HF_HUB_CACHE;
    process.env.HF_HUB_CACHE = cache;
    try {
      await assert.rejects(exportAbliterated(modelDir("llama"), blobs, unit, { force: true }), /is inside the Hub cache/);
      await assert.rejects(exportAbliterated(modelDir("llama"), join(work, "hf"), unit, { force: true }), /contains the Hub cache/);
      assert.deepEqual(await readdir(blobs), ["abc"]);
    } finally {
      if (saved === undefined) delete process.env.HF_HUB_CACHE;
      else process.env.HF_HUB_CACHE = saved;
    }
  });
});

describe("heal writes no file through a link (#23 item 3)", () => {
  it("an axolotl.yaml that is a link is refused before any model loads; its target is untouched", async () => {
    const out = join(work, "heal-out");
    await mkdir(out, { recursive: true });
    const target = join(work, "outside.yaml");
    await writeFile(target, "mine");
    await symlink(target, join(out, "axolotl.yaml"));
    await assert.rejects(
      runHealing({ model: modelDir("llama"), original: modelDir("llama"), out }),
      /axolotl\.yaml is a link \(to .*outside\.yaml\)/,
    );
    assert.equal(await readFile(target, "utf8"), "mine");
  });
});

describe("what killed exports left is cleaned up by the next one (#23 item 10)", () => {
  it("a GGUF export removes a dead process's partial file, k-quant float file and lock debris, and says so", async () => {
    const dir = join(work, "stale-gguf");
    await mkdir(dir, { recursive: true });
    const dead = 999999999;
    const left = [`.m.gguf.partial-${dead}-1700000000000`, `.m.gguf.bf16-${dead}.gguf`, `m.gguf.lock.${dead}-abc123`];
    for (const name of left) await writeFile(join(dir, name), "left by a killed export");
    await writeFile(join(dir, "m.gguf.lock"), String(dead)); // the lock itself: taken over
    await writeFile(join(dir, `.other.gguf.partial-${dead}-1`), "another file's: not ours to remove");
    const source = await withByteTokenizer(modelDir("llama"), join(work, "stale-source"), 300);
    const { notes } = await exportGguf(source, join(dir, "m.gguf"), { type: "f32" });
    assert.deepEqual((await readdir(dir)).sort(), [`.other.gguf.partial-${dead}-1`, "m.gguf"]);
    for (const name of left)
      assert.ok(
        notes.some((n) => n.includes(name) && n.includes("left by an interrupted export")),
        name,
      );
  });
});

describe("a command's outputs are checked and locked before any is written (#23 item 4)", () => {
  const small = { nTrain: 8, nVal: 4, nTest: 4, topK: 1, maxNewTokens: 4, batchSize: 8 };
  it("run: an earlier report or directions file is refused without force, and kept", async () => {
    const out = join(work, "run-earlier");
    await mkdir(out, { recursive: true });
    await writeFile(join(out, "report.json"), "earlier");
    await assert.rejects(
      runPipeline({ ...small, outDir: out }),
      /report\.json exists already; pass --force \(force: true in code\) to replace it/,
    );
    assert.equal(await readFile(join(out, "report.json"), "utf8"), "earlier");
    assert.deepEqual(await readdir(out), ["report.json"]);
  });

  it("run: two runs into one folder at once, the second is refused while the first writes", async () => {
    const out = join(work, "run-twice");
    const offsets = [[-1], [-2, -1]];
    const results = await Promise.allSettled(offsets.map((tokenOffsets) => runPipeline({ ...small, outDir: out, tokenOffsets })));
    const won = results.findIndex((r) => r.status === "fulfilled");
    assert.deepEqual(results.map((r) => r.status).sort(), ["fulfilled", "rejected"]);
    assert.match(String((results[1 - won] as PromiseRejectedResult).reason), /another run \(process \d+\) is writing .*run-twice/);
    // Every output is the winner's: directions of its token offsets only.
    const report = JSON.parse(await readFile(join(out, "report.json"), "utf8"));
    assert.deepEqual([...new Set(report.directions.map((d: { tokenOffset: number }) => d.tokenOffset))].sort(), offsets[won].sort());
  });

  it("run: a batch size past the number of prompts is clamped to it, not refused by the memory check (#23, low)", async () => {
    const report = await runPipeline({ ...small, outDir: join(work, "run-huge-batch"), batchSize: 99_999_999_999 });
    assert.equal(report.counts.harmfulTrain, 8);
  });

  it("heal: an earlier heal.json is refused without force, before any model loads", async () => {
    const out = join(work, "heal-earlier");
    await mkdir(out, { recursive: true });
    await writeFile(join(out, "heal.json"), "earlier");
    await assert.rejects(
      runHealing({ model: modelDir("llama"), original: modelDir("llama"), out }),
      /heal\.json exists already; pass --force \(force: true in code\) to replace it/,
    );
    assert.equal(await readFile(join(out, "heal.json"), "utf8"), "earlier");
  });
});

describe("a source index whose metadata is not an object (#23, low)", () => {
  it("is exported with an object holding the total size, not the string spread into characters", async () => {
    const source = join(work, "oops-index");
    await cp(modelDir("llama", "sharded"), source, { recursive: true });
    const indexFile = join(source, "model.safetensors.index.json");
    const index = JSON.parse(await readFile(indexFile, "utf8"));
    await writeFile(indexFile, JSON.stringify({ ...index, metadata: "oops" }));
    const out = join(work, "oops-export");
    await exportAbliterated(source, out, unit);
    const written = JSON.parse(await readFile(join(out, "model.safetensors.index.json"), "utf8"));
    assert.deepEqual(Object.keys(written.metadata), ["total_size"]);
    assert.equal(typeof written.metadata.total_size, "number");
  });
});
