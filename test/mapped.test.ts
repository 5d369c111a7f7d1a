// 16-bit weights held as stored are views of their file mapped copy-on-write (src/mapped.ts): the load reads
// nothing, the model computes the same logits as from words read into memory, a write into the words changes
// the model and never the file (through a link too), and ABLITERATE_MAP_WEIGHTS picks reading instead.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { cp, mkdtemp, readFile, rm, stat, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { backendInfo, initBackend, loadModel } from "../src/index.ts";
import { lastLogits, modelDir } from "./helpers/reference.ts";

const PROMPTS = [
  [1, 5, 9, 2],
  [3, 3, 7, 11],
];
const sha = async (file: string) =>
  createHash("sha256")
    .update(await readFile(file))
    .digest("hex");

/** Loads with ABLITERATE_MAP_WEIGHTS set to `setting` for the load only. */
async function loadWith(setting: string | undefined, dir: string) {
  const before = process.env.ABLITERATE_MAP_WEIGHTS;
  if (setting === undefined) delete process.env.ABLITERATE_MAP_WEIGHTS;
  else process.env.ABLITERATE_MAP_WEIGHTS = setting;
  try {
    return await loadModel(dir, { precision: "stored" });
  } finally {
    if (before === undefined) delete process.env.ABLITERATE_MAP_WEIGHTS;
    else process.env.ABLITERATE_MAP_WEIGHTS = before;
  }
}

describe("16-bit weights mapped from their file", async () => {
  await initBackend({ backend: "wasm" });
  it("runs here: the native BLAS path is installed", async () =>
    assert.ok((await backendInfo()).blas, "install libopenblas0-pthread (Debian/Ubuntu)"));
  if (!(await backendInfo()).blas) return;
  const work = await mkdtemp(join(tmpdir(), "abliterate-mapped-"));
  after(() => rm(work, { recursive: true, force: true }));
  const real = join(work, "real");
  await cp(modelDir("llama", "bf16"), real, { recursive: true });
  const linked = join(work, "linked");
  await symlink(real, linked);
  const file = join(real, "model.safetensors");
  const size = (await stat(file)).size;

  it("hold views of the whole file, and give the logits of words read into memory", async () => {
    const mapped = await loadWith(undefined, linked);
    const read = await loadWith("off", linked);
    try {
      const key = "model.layers.0.mlp.down_proj.weight";
      assert.equal(mapped.params.native![key].halfValues!.words.buffer.byteLength, size, "a view of the mapped file");
      assert.equal(read.params.native![key].halfValues!.words.buffer.byteLength, 2 * mapped.params.native![key].size, "words read");
      assert.deepEqual(await lastLogits(mapped, PROMPTS), await lastLogits(read, PROMPTS));
    } finally {
      mapped.dispose();
      read.dispose();
    }
  });

  it("take a write into the words in the model only: the file, loaded through a link, keeps every byte", async () => {
    const before = await sha(file);
    const model = await loadWith("on", linked);
    try {
      const logits = await lastLogits(model, PROMPTS);
      const { words } = model.params.native!["model.layers.0.mlp.down_proj.weight"].halfValues!;
      words.fill(0x3f80); // every weight 1.0 in bf16
      assert.notDeepEqual(await lastLogits(model, PROMPTS), logits, "the write changes the model");
    } finally {
      model.dispose();
    }
    assert.equal(await sha(file), before);
  });

  it("name a wrong ABLITERATE_MAP_WEIGHTS", async () => {
    await assert.rejects(loadWith("sometimes", linked), /ABLITERATE_MAP_WEIGHTS must be on or off, got "sometimes"/);
  });
});
