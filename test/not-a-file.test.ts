// A pipe, socket or folder given where a file is read is refused at once, naming it, instead of waiting
// forever or failing with a raw errno (#23 item 15, and item 12's EISDIR).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cp, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { loadDirections, loadInstructions, openCheckpoint } from "../src/index.ts";
import { modelDir } from "./helpers/reference.ts";

let work: string;
before(async () => {
  work = await mkdtemp(join(tmpdir(), "abliterate-not-a-file-"));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

describe("files that are not files", () => {
  it("a FIFO as a directions file, an instruction file, config.json or a shard", async () => {
    const fifo = join(work, "d.safetensors");
    execFileSync("mkfifo", [fifo]);
    await assert.rejects(loadDirections(fifo), /d\.safetensors: is not a regular file \(a pipe, socket or device\)/);
    const rows = join(work, "rows.jsonl");
    execFileSync("mkfifo", [rows]);
    await assert.rejects(loadInstructions(rows), /rows\.jsonl: is not a regular file/);
    const config = join(work, "config-fifo");
    await cp(modelDir("llama"), config, { recursive: true });
    await rm(join(config, "config.json"));
    execFileSync("mkfifo", [join(config, "config.json")]);
    await assert.rejects(openCheckpoint(config), /config\.json: is not a regular file/);
    const shard = join(work, "shard-fifo");
    await cp(modelDir("llama"), shard, { recursive: true });
    await rm(join(shard, "model.safetensors"));
    execFileSync("mkfifo", [join(shard, "model.safetensors")]);
    await assert.rejects(openCheckpoint(shard), /model\.safetensors: is not a regular file/);
  });

  it("a folder as a directions file", async () => {
    const folder = join(work, "dir.safetensors");
    await mkdir(folder);
    await assert.rejects(loadDirections(folder), /dir\.safetensors: is a folder, not a file/);
  });
});
