// What an adversarial or unlucky user meets: Hub-style symlinked snapshots, links that alias the source,
// malicious indexes, interrupted and concurrent exports, bad values on the command line and in files.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, it, before, after } from "node:test";
import {
  ChatTokenizer,
  computeDirections,
  exportAbliterated,
  loadDirections,
  loadInstructions,
  loadModel,
  saveDirections,
  unitVector,
  DEMO_MODEL_DIR,
  CheckpointWeights,
} from "../src/index.ts";
import { PACKAGE_ROOT } from "../src/paths.ts";
import { withLock } from "../src/files.ts";
import { modelDir, reference } from "./helpers/reference.ts";

const run = promisify(execFile);
const bin = join(PACKAGE_ROOT, "bin", "abliterate.js");
async function cliFails(...args: string[]): Promise<string> {
  try {
    await run(process.execPath, [bin, ...args], { cwd: PACKAGE_ROOT, timeout: 120_000 });
  } catch (error) {
    return String((error as { stderr?: string }).stderr);
  }
  throw new Error(`abliterate ${args.join(" ")} succeeded`);
}

let work: string;
const ref = reference("llama");
const unit = unitVector(ref.direction);
/** A direction of the demo model's width, read from its config. */
const demoDirection = async () =>
  unitVector(
    new Float64Array((JSON.parse(await readFile(join(DEMO_MODEL_DIR, "config.json"), "utf8")) as { hidden_size: number }).hidden_size).fill(
      1,
    ),
  );
before(async () => {
  work = await mkdtemp(join(tmpdir(), "abliterate-reliability-"));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A folder whose every file is a symbolic link to the demo model's, as a Hub cache snapshot is. */
async function linkedSnapshot(name: string, from = DEMO_MODEL_DIR): Promise<string> {
  const dir = join(work, name);
  await mkdir(dir);
  for (const f of await readdir(from)) await symlink(join(from, f), join(dir, f));
  return dir;
}

describe("exports from Hub-style snapshots (every file a link)", () => {
  it("copy the content of linked config, tokenizer and generation files, and the result loads and answers", async () => {
    const snapshot = await linkedSnapshot("snapshot");
    const out = join(work, "from-snapshot");
    await exportAbliterated(snapshot, out, await demoDirection());
    for (const f of ["config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"]) {
      assert.ok((await stat(join(out, f))).isFile(), `${f} is a file`);
      assert.deepEqual(await readFile(join(out, f)), await readFile(join(DEMO_MODEL_DIR, f)), `${f} copied`);
    }
    const model = await loadModel(out);
    const { texts } = await model.generate(model.tokenizeInstructions(["Name three primary colors."]), { maxNewTokens: 4 });
    assert.equal(texts.length, 1);
    model.dispose();
  });
  it("an export that would not load fails before anything is put in place", async () => {
    const source = join(work, "broken-tokenizer");
    await cp(DEMO_MODEL_DIR, source, { recursive: true });
    await writeFile(join(source, "tokenizer.json"), "{ not json");
    const out = join(work, "never");
    await assert.rejects(
      exportAbliterated(source, out, await demoDirection()),
      /the export would not load \(.*tokenizer.json: not valid JSON.*\); nothing was written to .*never/,
    );
    await assert.rejects(readdir(out), /ENOENT/);
  });
  it("weights in other formats are not copied beside the edited ones", async () => {
    const source = join(work, "with-bin");
    await cp(modelDir("llama"), source, { recursive: true });
    await writeFile(join(source, "pytorch_model.bin"), "stale weights");
    await writeFile(join(source, "LICENSE"), "keep me");
    const out = join(work, "without-bin");
    await exportAbliterated(source, out, unit);
    const files = await readdir(out);
    assert.ok(!files.includes("pytorch_model.bin"));
    assert.ok(files.includes("LICENSE"));
  });
});

describe("source and output are compared as real paths", () => {
  it("an output that is a link to the source is refused, and the source survives --force", async () => {
    const source = join(work, "victim");
    await cp(modelDir("llama"), source, { recursive: true });
    const alias = join(work, "alias");
    await symlink(source, alias);
    await assert.rejects(exportAbliterated(alias, source, unit, { force: true }), /is the source folder/);
    await assert.rejects(exportAbliterated(source, alias, unit, { force: true }), /is the source folder \(through a link/);
    await assert.rejects(exportAbliterated(source, join(alias, "sub"), unit, { force: true }), /inside the source folder/);
    assert.ok((await readdir(source)).includes("model.safetensors"), "the source is intact");
  });
});

describe("malicious or incomplete indexes", () => {
  async function shardedCopy(
    name: string,
  ): Promise<{ dir: string; index: Record<string, unknown> & { weight_map: Record<string, unknown> } }> {
    const dir = join(work, name);
    await cp(modelDir("llama", "sharded"), dir, { recursive: true });
    return { dir, index: JSON.parse(await readFile(join(dir, "model.safetensors.index.json"), "utf8")) };
  }
  it("a weight_map entry outside the folder", async () => {
    const { dir, index } = await shardedCopy("escape-index");
    await cp(join(dir, "model-00001-of-00002.safetensors"), join(work, "outside.safetensors"));
    index.weight_map["model.norm.weight"] = "../outside.safetensors";
    await writeFile(join(dir, "model.safetensors.index.json"), JSON.stringify(index));
    await assert.rejects(
      CheckpointWeights.open(dir),
      /weight_map\["model.norm.weight"\]: "..\/outside.safetensors" is not a plain relative path inside the folder/,
    );
    await assert.rejects(exportAbliterated(dir, join(work, "escape-out"), unit), /is not a plain relative path/);
  });
  it("a shard that is a link pointing outside the folder", async () => {
    const { dir } = await shardedCopy("link-shard");
    const shard = join(dir, "model-00002-of-00002.safetensors");
    await cp(shard, join(work, "elsewhere.safetensors"));
    await rm(shard);
    await symlink(join(work, "elsewhere.safetensors"), shard);
    await assert.rejects(
      CheckpointWeights.open(dir),
      /weight_map names model-00002-of-00002.safetensors, which lies outside .* once links are followed/,
    );
  });
  it("a weight_map value that is not a string, and an empty weight_map", async () => {
    const { dir, index } = await shardedCopy("number-index");
    index.weight_map["model.norm.weight"] = 5;
    await writeFile(join(dir, "model.safetensors.index.json"), JSON.stringify(index));
    await assert.rejects(CheckpointWeights.open(dir), /weight_map\["model.norm.weight"\]: 5 is not a file name/);
    await writeFile(join(dir, "model.safetensors.index.json"), JSON.stringify({ weight_map: {} }));
    await assert.rejects(CheckpointWeights.open(dir), /weight_map names no tensors/);
  });
  it("an index that leaves out tensors the architecture needs: the export refuses and writes nothing", async () => {
    const { dir, index } = await shardedCopy("partial-index");
    const kept = Object.fromEntries(Object.entries(index.weight_map).filter(([k]) => !k.includes("layers.2.")));
    // The shard still holds them: drop them from the shards too by pointing the index at one shard only.
    const shard1 = Object.fromEntries(Object.entries(kept).filter(([, f]) => f === "model-00001-of-00002.safetensors"));
    await rm(join(dir, "model-00002-of-00002.safetensors"));
    await writeFile(join(dir, "model.safetensors.index.json"), JSON.stringify({ ...index, weight_map: shard1 }));
    const out = join(work, "partial-out");
    await assert.rejects(exportAbliterated(dir, out, unit), /missing tensor model\.(layers|norm)/);
    await assert.rejects(readdir(out), /ENOENT/);
  });
  it("an export checks shapes and dtypes against config.json as loading does", async () => {
    const dir = join(work, "wrong-config");
    await cp(modelDir("llama"), dir, { recursive: true });
    const config = JSON.parse(await readFile(join(dir, "config.json"), "utf8"));
    await writeFile(join(dir, "config.json"), JSON.stringify({ ...config, intermediate_size: 96 }));
    await assert.rejects(
      exportAbliterated(dir, join(work, "wrong-config-out"), unit),
      /mlp.gate_proj.weight: expected \[96, 64\] from config.json, got \[160, 64\]/,
    );
  });
});

describe("interrupted and concurrent exports", () => {
  it("a partial folder left by a dead process is removed by the next export, which says so", async () => {
    const out = join(work, "after-crash");
    const stale = join(work, ".after-crash.partial-999999999-1");
    await mkdir(stale);
    await writeFile(join(stale, "model.safetensors"), "half");
    const notices: string[] = [];
    await exportAbliterated(modelDir("llama"), out, unit, { onNotice: (l) => notices.push(l) });
    await assert.rejects(stat(stale), /ENOENT/);
    assert.match(notices.join("\n"), /removed .*\.after-crash\.partial-999999999-1, left by an interrupted export/);
  });
  it("withLock: of many takers at once exactly one holds the lock; a dead process's lock is taken over", async () => {
    const lock = join(work, "race", "x.lock");
    for (let round = 0; round < 40; round++) {
      let holders = 0;
      // Takers start a few event-loop turns apart, so that some arrive while another is creating the lock.
      const results = await Promise.allSettled(
        Array.from({ length: 12 }, async (_, i) => {
          for (let turn = 0; turn < i % 4; turn++) await new Promise((r) => setImmediate(r));
          return withLock(
            lock,
            async () => {
              holders++;
              await new Promise((r) => setTimeout(r, 20));
            },
            { busy: (pid) => `busy ${pid}` },
          );
        }),
      );
      assert.equal(holders, 1, `round ${round}: ${holders} holders`);
      assert.equal(results.filter((r) => r.status === "rejected").length, 11);
      // #23 item 14: the refusal names the lock file and how to remove one whose process id was reused.
      const busy = new RegExp(
        `^Error: busy ${process.pid} \\(lock file .*x\\.lock; if process ${process.pid} is not this tool, its id was reused`,
      );
      for (const r of results) if (r.status === "rejected") assert.match(String(r.reason), busy);
    }
    await writeFile(lock, "999999999");
    assert.equal(await withLock(lock, async () => "taken over"), "taken over");
    assert.deepEqual(await readdir(join(work, "race")), []);
    // A folder where the lock goes is named, and left where it is (it used to be renamed and fail with EISDIR).
    await mkdir(lock);
    await writeFile(join(lock, "mine.txt"), "keep");
    await assert.rejects(
      withLock(lock, async () => "never"),
      /x\.lock: a lock file goes here, but this is a folder; remove it or choose another output/,
    );
    assert.equal(await readFile(join(lock, "mine.txt"), "utf8"), "keep");
  });
  it("two exports to the same folder at once: the second is refused while the first runs", async () => {
    const out = join(work, "contended");
    const results = await Promise.allSettled([
      exportAbliterated(modelDir("llama"), out, unit),
      exportAbliterated(modelDir("llama"), out, unit),
    ]);
    assert.deepEqual(results.map((r) => r.status).sort(), ["fulfilled", "rejected"]);
    const failure = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
    assert.match(String(failure.reason), /another export \(process \d+\) is writing .*contended|is not empty; pass --force/);
  });
});

describe("every output is checked before any work", () => {
  it("run refuses a non-empty model folder at once, without touching directions.safetensors", async () => {
    const out = join(work, "run-out");
    await mkdir(join(out, "model"), { recursive: true });
    await writeFile(join(out, "model", "keep.txt"), "mine");
    await writeFile(join(out, "directions.safetensors"), "mine too");
    const started = Date.now();
    assert.match(await cliFails("run", "--out", out), /output folder .*model is not empty and is not an export of this tool/);
    assert.ok(Date.now() - started < 30_000);
    assert.equal(await readFile(join(out, "directions.safetensors"), "utf8"), "mine too");
  });
  it("directions -o refuses an existing file before collecting anything", async () => {
    const path = join(work, "dirs.safetensors");
    await writeFile(path, "x");
    assert.match(
      await cliFails("directions", "-o", path),
      /dirs.safetensors exists already; pass --force \(force: true in code\) to replace it/,
    );
  });
});

describe("numeric options are checked with their name and range", () => {
  for (const [args, message] of [
    [["generate", "hi", "--temperature", "abc"], /--temperature must be a number >= 0, got "abc"/],
    [["generate", "hi", "--temperature", "-1"], /--temperature must be a number >= 0, got "-1"/],
    [["generate", "hi", "--seed", "abc"], /--seed must be an integer between 0 and 4294967295, got "abc"/],
    [["apply", "-d", "x", "-o", "y", "--scale", ""], /--scale.*must be a number between 0 and 1, got ""/],
    [["select", "-d", "x", "--refusal-tokens", "a,b"], /expected comma-separated token ids \(non-negative integers\), got "a,b"/],
    [["run", "--kl-threshold", "lots"], /--kl-threshold must be a number >= 0, got "lots"/],
  ] as [string[], RegExp][]) {
    it(args.join(" "), async () => assert.match(await cliFails(...args), message));
  }
});

describe("bad directions files give clear messages", () => {
  it("malformed metadata, a width that is not the model's, and NaN values", async () => {
    const model = await loadModel(modelDir("llama"));
    const { collectMeanActivations } = await import("../src/index.ts");
    const directions = computeDirections(
      await collectMeanActivations(model, ref.harmful),
      await collectMeanActivations(model, ref.harmless),
    );
    model.dispose();
    const path = join(work, "meta.safetensors");
    await saveDirections(path, directions.slice(0, 1), {});
    const { writeSafetensors, floatTensor } = await import("../src/index.ts");
    const broken = join(work, "broken-meta.safetensors");
    await writeSafetensors(broken, [floatTensor("blocks.0.hook_resid_pre@-1", new Float32Array(64), [64])], {
      format: "abliterate-directions",
      directions: "null",
    });
    await assert.rejects(loadDirections(broken), /broken-meta.safetensors: metadata "directions" is not a list of directions/);
    const nan = join(work, "nan.safetensors");
    await writeSafetensors(nan, [floatTensor("blocks.0.hook_resid_pre@-1", new Float32Array(64).fill(NaN), [64])], {
      format: "abliterate-directions",
      directions: JSON.stringify([{ key: "blocks.0.hook_resid_pre@-1", layer: 0, hook: "resid_pre", tokenOffset: -1 }]),
    });
    await assert.rejects(loadDirections(nan), /nan.safetensors: direction blocks.0.hook_resid_pre@-1 contains NaN at index 0/);
    const narrow = join(work, "narrow.safetensors");
    await writeSafetensors(narrow, [floatTensor("blocks.0.hook_resid_pre@-1", new Float32Array(32).fill(1), [32])], {
      format: "abliterate-directions",
      directions: JSON.stringify([{ key: "blocks.0.hook_resid_pre@-1", layer: 0, hook: "resid_pre", tokenOffset: -1 }]),
    });
    assert.match(
      await cliFails("apply", "-m", modelDir("llama"), "-d", narrow, "-o", join(work, "narrow-out")),
      /narrow\.safetensors: direction blocks\.0\.hook_resid_pre@-1 has 32 values, but the model's d_model \(hidden_size\) is 64/,
    );
  });
});

describe("instruction files", () => {
  const file = async (name: string, text: string) => {
    const path = join(work, name);
    await writeFile(path, text);
    return path;
  };
  it("a UTF-8 byte-order mark is not part of the first instruction", async () => {
    assert.deepEqual(await loadInstructions(await file("bom.txt", "\uFEFFWrite a poem.\nName a color.\n")), [
      "Write a poem.",
      "Name a color.",
    ]);
    assert.deepEqual(await loadInstructions(await file("bom.jsonl", '\uFEFF{"text": "a"}\n')), ["a"]);
  });
  it("a value that is not a string, and a column named like an object property", async () => {
    await assert.rejects(
      loadInstructions(await file("num.jsonl", '{"text": 5}\n')),
      /num.jsonl: row 1, column "text" is a number \(5\), not a string/,
    );
    await assert.rejects(
      loadInstructions(await file("ctor.jsonl", '{"text": "a"}\n'), { column: "constructor" }),
      /ctor.jsonl: row 1 has no column "constructor" \(columns: text\)/,
    );
  });
});

describe("unbounded inputs fail clearly instead of crashing", () => {
  it("a chat template that loops for ever is caught when the tokenizer loads, naming the file", async () => {
    const dir = join(work, "loop-template");
    await cp(DEMO_MODEL_DIR, dir, { recursive: true });
    const config = JSON.parse(await readFile(join(dir, "tokenizer_config.json"), "utf8"));
    await writeFile(
      join(dir, "tokenizer_config.json"),
      JSON.stringify({ ...config, chat_template: "{% for i in range(100000000) %}{{ i }}{% endfor %}" }),
    );
    await assert.rejects(
      ChatTokenizer.load(dir),
      new RegExp(
        String.raw`loop-template\/tokenizer_config.json: rendering the chat template for a one-line conversation f` +
          String.raw`ailed: it did not finish within 10 s with 256 MB of memory \(twice, on fresh threads\); the template is ` +
          String.raw`broken or hostile`,
      ),
    );
  });
  it("a chat template with a syntax error names its file", async () => {
    const dir = join(work, "syntax-template");
    await cp(DEMO_MODEL_DIR, dir, { recursive: true });
    const config = JSON.parse(await readFile(join(dir, "tokenizer_config.json"), "utf8"));
    await writeFile(join(dir, "tokenizer_config.json"), JSON.stringify({ ...config, chat_template: "{% for m in messages %}{{ m }" }));
    await assert.rejects(ChatTokenizer.load(dir), /syntax-template\/tokenizer_config.json: the chat template does not parse/);
  });
  it("a prompt longer than the model's context is refused with the numbers", async () => {
    const model = await loadModel(modelDir("llama"));
    const long = Array.from({ length: 129 }, (_, i) => 3 + (i % 200));
    assert.throws(
      () => model.forward([long]),
      new RegExp(
        String.raw`a sequence of 129 tokens is longer than the model's context of 128 t` +
          String.raw`okens \(max_position_embeddings in config.json\); shorten the prompt`,
      ),
    );
    const { tokens } = await model.generate([long.slice(0, 120)], { maxNewTokens: 50, stopTokens: [] });
    assert.equal(tokens[0].length, 8, "generation stops at the context length");
    // #23 item 7: generating from a prompt past the context gave an empty answer (and, before, a message about token ids).
    await assert.rejects(
      model.generate([long], { maxNewTokens: 5 }),
      new RegExp(
        String.raw`a sequence of 129 tokens is longer than the model's context of 128 tokens \(max_position_embeddings ` +
          String.raw`in config.json\); shorten the prompt`,
      ),
    );
    model.dispose();
  });
});
