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

describe("a text no prompt could hold is named where it is read (#23 item 16)", () => {
  it("an instruction or a pair's answer of 1.5 million characters names the file, row and part", async () => {
    const { loadPreferences } = await import("../src/index.ts");
    const { writeFile } = await import("node:fs/promises");
    const long = "x".repeat(1_500_000);
    const rows = join(work, "long.jsonl");
    await writeFile(rows, [JSON.stringify({ text: "short" }), JSON.stringify({ text: long })].join("\n") + "\n");
    await assert.rejects(loadInstructions(rows), /long\.jsonl: row 2: 1500000 characters, longer than the 1000000 a chat-templated prompt/);
    const pairs = join(work, "long-pairs.jsonl");
    await writeFile(pairs, JSON.stringify({ prompt: "Hi", chosen: long, rejected: "No." }) + "\n");
    await assert.rejects(loadPreferences(pairs), /long-pairs\.jsonl: row 1: chosen: 1500000 characters/);
  });
});
