// Inputs that used to fail with a raw errno or JavaScript message after the work was done (#23 item 12): each
// now works, or is refused before the work, naming the file, tensor or field.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, open, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { exportAbliterated, loadConfig, loadModel, unitVector, DEMO_MODEL_DIR } from "../src/index.ts";
import { writeFileWhole } from "../src/files.ts";
import { PACKAGE_ROOT } from "../src/paths.ts";
import { modelDir, reference } from "./helpers/reference.ts";

const run = promisify(execFile);
let work: string;
before(async () => {
  work = await mkdtemp(join(tmpdir(), "abliterate-named-errors-"));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});
const unit = unitVector(reference("llama").direction);

/** A copy of the llama reference checkpoint, changed by `edit`. */
async function llamaCopy(name: string, edit: (dir: string) => Promise<void> = async () => {}): Promise<string> {
  const dir = join(work, name);
  await cp(modelDir("llama"), dir, { recursive: true });
  await edit(dir);
  return dir;
}

/** The tensor names of a safetensors file's header. */
async function tensorNames(path: string): Promise<string[]> {
  const bytes = await readFile(path);
  const length = Number(bytes.readBigUInt64LE(0));
  return Object.keys(JSON.parse(bytes.subarray(8, 8 + length).toString("utf8")) as object).filter((k) => k !== "__metadata__");
}

describe("inputs that failed with a raw error after the work (#23 item 12)", () => {
  it("a checkpoint whose index keeps its shard in a subfolder exports, in the same layout, and loads", async () => {
    const src = await llamaCopy("sub-shard", async (dir) => {
      await mkdir(join(dir, "weights"));
      await rename(join(dir, "model.safetensors"), join(dir, "weights", "model.safetensors"));
      const names = await tensorNames(join(dir, "weights", "model.safetensors"));
      const weightMap = Object.fromEntries(names.map((n) => [n, "weights/model.safetensors"]));
      await writeFile(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    });
    const out = join(work, "sub-shard-out");
    await exportAbliterated(src, out, unit);
    assert.ok((await readdir(join(out, "weights"))).includes("model.safetensors"));
    const model = await loadModel(out);
    assert.equal(model.config.hidden_size, unit.length);
    model.dispose();
  });

  it("a source file whose name is not UTF-8 is copied under the same bytes", async () => {
    const name = Buffer.from([0x6e, 0x6f, 0x74, 0x65, 0xff, 0x2e, 0x74, 0x78, 0x74]); // "note\xff.txt"
    const src = await llamaCopy("latin1-name", async (dir) => {
      const handle = await open(Buffer.concat([Buffer.from(dir + "/"), name]), "w");
      await handle.writeFile("kept");
      await handle.close();
    });
    const out = join(work, "latin1-name-out");
    await exportAbliterated(src, out, unit);
    const names = await readdir(out, { encoding: "buffer" });
    assert.ok(
      names.some((n) => n.equals(name)),
      "the file keeps its name",
    );
    assert.equal(await readFile(Buffer.concat([Buffer.from(out + "/"), name]), "utf8"), "kept");
  });

  it("a malformed abliterate.json in the source is named before anything is written", async () => {
    const src = await llamaCopy("bad-record", (dir) => writeFile(join(dir, "abliterate.json"), "{not json"));
    const out = join(work, "bad-record-out");
    await assert.rejects(
      exportAbliterated(src, out, unit),
      new RegExp(
        String.raw`bad-record\/abliterate\.json: not valid JSON \(.*\); the export keeps the source's record of its own edit, ` +
          "so fix or remove this file",
      ),
    );
    assert.deepEqual(
      (await readdir(work)).filter((f) => f.includes("bad-record-out")),
      [],
      "no output, no partial folder",
    );
    // heal refuses it among its checks, before any model loads or trains.
    let stderr = "";
    try {
      await run(
        process.execPath,
        [join(PACKAGE_ROOT, "bin", "abliterate.js"), "heal", "-m", src, "--original", modelDir("llama"), "-o", join(work, "bad-heal")],
        { cwd: PACKAGE_ROOT, timeout: 60_000 },
      );
    } catch (error) {
      stderr = String((error as { stderr?: string }).stderr);
    }
    assert.match(stderr, /bad-record\/abliterate\.json: not valid JSON/);
    assert.doesNotMatch(stderr, /generations|DPO steps/);
  });

  it("a write that fails for lack of space names the file, not only the errno", async () => {
    const path = join(work, "full.bin");
    const enospc = Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC", errno: -28, syscall: "write" });
    await assert.rejects(
      writeFileWhole(path, async () => {
        throw enospc;
      }),
      (error: Error & { code?: string }) =>
        error.code === "ENOSPC" &&
        error.message === `${path}: cannot be written: the disk is full (ENOSPC); nothing was written there` &&
        error.cause === enospc,
    );
    assert.deepEqual(
      (await readdir(work)).filter((f) => f.includes("full.bin")),
      [],
      "no partial file left",
    );
  });

  it("an odd rotary dimension (head_dim) is refused when config.json is read, naming the field", async () => {
    const dir = await llamaCopy("odd-head", async (d) => {
      const config = JSON.parse(await readFile(join(d, "config.json"), "utf8")) as Record<string, number>;
      await writeFile(join(d, "config.json"), JSON.stringify({ ...config, head_dim: 9 }));
    });
    await assert.rejects(
      loadConfig(dir),
      new RegExp(
        String.raw`odd-head\/config\.json: head_dim 9 rotates 9 dimensions, an odd number; rotary embeddings turn pairs of ` +
          "dimensions, so it must be even",
      ),
    );
  });

  it("a config whose embedding no array can hold is refused before any weight is read, naming the tensor", async () => {
    // Every field within its bounds, 8.6 GB of bf16 weights in a sparse file: one tensor of 4 294 983 680 values.
    const dir = join(work, "absurd");
    await cp(DEMO_MODEL_DIR, dir, { recursive: true });
    const config = JSON.parse(await readFile(join(dir, "config.json"), "utf8")) as Record<string, unknown>;
    const [hidden, vocab, inter, heads, hd] = [16384, 262145, 256, 2, 128];
    await writeFile(
      join(dir, "config.json"),
      JSON.stringify({
        ...config,
        hidden_size: hidden,
        intermediate_size: inter,
        num_hidden_layers: 1,
        num_attention_heads: heads,
        num_key_value_heads: heads,
        head_dim: hd,
        vocab_size: vocab,
        tie_word_embeddings: true,
      }),
    );
    const p = "model.layers.0.";
    const shapes: [string, number[]][] = [
      ["model.embed_tokens.weight", [vocab, hidden]],
      ["model.norm.weight", [hidden]],
      [`${p}input_layernorm.weight`, [hidden]],
      [`${p}post_attention_layernorm.weight`, [hidden]],
      [`${p}self_attn.q_proj.weight`, [heads * hd, hidden]],
      [`${p}self_attn.k_proj.weight`, [heads * hd, hidden]],
      [`${p}self_attn.v_proj.weight`, [heads * hd, hidden]],
      [`${p}self_attn.o_proj.weight`, [hidden, heads * hd]],
      [`${p}mlp.gate_proj.weight`, [inter, hidden]],
      [`${p}mlp.up_proj.weight`, [inter, hidden]],
      [`${p}mlp.down_proj.weight`, [hidden, inter]],
    ];
    const header: Record<string, unknown> = {};
    let offset = 0;
    for (const [name, shape] of shapes) {
      const bytes = 2 * shape.reduce((a, b) => a * b, 1);
      header[name] = { dtype: "BF16", shape, data_offsets: [offset, offset + bytes] };
      offset += bytes;
    }
    const json = Buffer.from(JSON.stringify(header).padEnd(Math.ceil(JSON.stringify(header).length / 8) * 8));
    const handle = await open(join(dir, "model.safetensors"), "w");
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(json.length));
    await handle.write(Buffer.concat([length, json]));
    await handle.truncate(8 + json.length + offset); // sparse: no disk used
    await handle.close();
    const started = Date.now();
    await assert.rejects(
      loadModel(dir),
      new RegExp(
        String.raw`absurd: model\.embed_tokens\.weight would have 4294983680 values \(shape \[262145, 16384\] from ` +
          String.raw`config\.json\), more than the \d+ one array holds`,
      ),
    );
    assert.ok(Date.now() - started < 10_000, "refused before reading 8.6 GB");
  });
});
