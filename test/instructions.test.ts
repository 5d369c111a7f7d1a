import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it, before, after } from "node:test";
import { parquetWriteBuffer } from "hyparquet-writer";
import { loadInstructions, parseCsv } from "../src/data/instructions.ts";
import { dataFile, PACKAGE_ROOT } from "../src/paths.ts";
import { copyExamples, everydayExamples, EVERYDAY_PHRASINGS } from "../scripts/demo/everyday.ts";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "abliterate-data-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});
const file = async (name: string, content: string | ArrayBuffer) => {
  const path = join(dir, name);
  await writeFile(path, typeof content === "string" ? content : Buffer.from(content));
  return path;
};

describe("loadInstructions", () => {
  it("reads .txt, .json, .jsonl, .csv and .parquet", async () => {
    assert.deepEqual(await loadInstructions(await file("a.txt", "Write a poem.\n\nName a color.\n")), ["Write a poem.", "Name a color."]);
    assert.deepEqual(await loadInstructions(await file("a.json", JSON.stringify(["x", "y"]))), ["x", "y"]);
    assert.deepEqual(await loadInstructions(await file("b.json", JSON.stringify([{ instruction: "x" }, { instruction: "y" }]))), [
      "x",
      "y",
    ]);
    assert.deepEqual(await loadInstructions(await file("a.jsonl", '{"text":"x","n":1}\n{"text":"y","n":2}\n')), ["x", "y"]);
    assert.deepEqual(await loadInstructions(await file("a.csv", 'goal,target\n"Say ""hi"", then go",t1\n"two\nlines",t2\n')), [
      'Say "hi", then go',
      "two\nlines",
    ]);
    const parquet = parquetWriteBuffer({
      columnData: [
        { name: "text", data: ["p1", "p2", "p3"], type: "STRING" },
        { name: "label", data: [1, 0, 1], type: "INT32" },
      ],
    });
    assert.deepEqual(await loadInstructions(await file("a.parquet", parquet)), ["p1", "p2", "p3"]);
    assert.deepEqual(await loadInstructions(await file("b.parquet", parquet), { limit: 2 }), ["p1", "p2"]);
  });
  it("reads a named column", async () => {
    const path = await file("c.jsonl", '{"text":"a","prompt":"b"}\n');
    assert.deepEqual(await loadInstructions(path, { column: "prompt" }), ["b"]);
  });
  it("reads the project's own instruction sets", async () => {
    const harmful = await loadInstructions(dataFile("harmful", "test"));
    const harmless = await loadInstructions(dataFile("harmless", "train"));
    assert.ok(harmful.length >= 50 && harmless.length >= 300);
  });
});

describe("the project's instruction sets are split by task", () => {
  type Row = { text: string; form: string; verb: string; object: string };
  type Split = Parameters<typeof dataFile>[1];
  const rows = async (kind: "harmful" | "harmless", split: Split): Promise<Row[]> =>
    (await readFile(dataFile(kind, split), "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Row);
  const phrasingOf = (r: Row) => r.text.replace(`${r.verb} ${r.object}`, "{T}").replace(/^./, (c) => c.toLowerCase());
  for (const kind of ["harmful", "harmless"] as const) {
    it(`${kind}: validation, test and held-out requests share no topic, task or phrasing with training`, async () => {
      const train = await rows(kind, "train");
      const topics = new Set(train.map((r) => `${r.verb} ${r.object}`));
      const objects = new Set(train.map((r) => r.object));
      const phrasings = new Set(train.map(phrasingOf));
      for (const split of ["validation", "test", "heldout"] as const) {
        const other = await rows(kind, split);
        assert.ok(other.length > 0, `${kind}/${split} is empty`);
        for (const r of other) {
          assert.ok(r.text.includes(`${r.verb} ${r.object}`), `${kind}/${split}: ${JSON.stringify(r.text)} does not contain its topic`);
          assert.ok(!topics.has(`${r.verb} ${r.object}`), `${kind}/${split}: the topic of ${JSON.stringify(r.text)} is in training`);
          assert.ok(!phrasings.has(phrasingOf(r)), `${kind}/${split}: the phrasing of ${JSON.stringify(r.text)} is in training`);
          if (split === "heldout")
            assert.ok(!objects.has(r.object), `${kind}/heldout: the object of ${JSON.stringify(r.text)} is in training`);
        }
      }
      const validation = new Set((await rows(kind, "validation")).map((r) => `${r.verb} ${r.object}`));
      for (const r of await rows(kind, "test"))
        assert.ok(!validation.has(`${r.verb} ${r.object}`), `${kind}: test topic ${r.verb} ${r.object} is also in validation`);
    });
  }
});

describe("the free-form split (#28) is hand-written and kept out of training", () => {
  type Row = { text: string; category: string; form: string; verb?: string; object?: string };
  const rows = async (kind: "harmful" | "harmless", split: Parameters<typeof dataFile>[1]): Promise<Row[]> =>
    (await readFile(dataFile(kind, split), "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Row);
  const normal = (t: string) => t.toLowerCase().replace(/\s+/g, " ").trim();
  const escapeRegExp = (t: string) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

  it("50 harmful and 50 harmless requests, each once, each with a category", async () => {
    const all: string[] = [];
    for (const kind of ["harmful", "harmless"] as const) {
      const free = await rows(kind, "freeform");
      assert.equal(free.length, 50, `${kind}/freeform.jsonl`);
      for (const r of free) assert.ok(r.form === "free" && r.category.length > 0 && r.text.length > 0, JSON.stringify(r));
      all.push(...free.map((r) => normal(r.text)));
    }
    assert.equal(new Set(all).size, all.length, "a free-form request appears twice");
  });

  it("no free-form request is a template request or written in a training phrasing", async () => {
    for (const kind of ["harmful", "harmless"] as const) {
      const templates = new Set<string>();
      const frames: RegExp[] = [];
      for (const split of ["train", "validation", "test", "heldout"] as const) {
        for (const r of await rows(kind, split)) {
          templates.add(normal(r.text));
          if (split !== "train") continue;
          // The training phrasing with its topic as a wildcard: "Write a short guide on (.+)\."
          const [head, tail] = r.text.split(`${r.verb} ${r.object}`);
          frames.push(new RegExp(`^${escapeRegExp(head)}.+${escapeRegExp(tail)}$`, "i"));
        }
      }
      for (const r of [...(await rows("harmful", "freeform")), ...(await rows("harmless", "freeform"))]) {
        assert.ok(!templates.has(normal(r.text)), `${JSON.stringify(r.text)} is a template request of ${kind}`);
        const frame = frames.find((f) => f.test(r.text));
        assert.ok(!frame, `${JSON.stringify(r.text)} is written in the training phrasing ${frame}`);
      }
    }
  });

  it("no free-form request is an everyday (or copy-set) request or in an everyday phrasing, casual variants included", async () => {
    const everyday = new Set([...everydayExamples(), ...copyExamples()].map((e) => normal(e.text).replace(/[.?!]$/, "")));
    const frames = EVERYDAY_PHRASINGS.map((p) => {
      const [head, tail] = p.split("{T}");
      const bare = tail.replace(/[.?!]$/, "");
      return new RegExp(`^(hi! )?${escapeRegExp(head)}.+${escapeRegExp(bare)}[.?!]?( thanks!)?$`, "i");
    });
    assert.ok(
      frames.some((f) => f.test("hi! can you tell me how to bake bread")),
      "the frames do not match a casual variant",
    );
    for (const r of [...(await rows("harmful", "freeform")), ...(await rows("harmless", "freeform"))]) {
      assert.ok(!everyday.has(normal(r.text).replace(/[.?!]$/, "")), `${JSON.stringify(r.text)} is an everyday training request`);
      const frame = frames.find((f) => f.test(r.text));
      assert.ok(!frame, `${JSON.stringify(r.text)} is written in the everyday phrasing ${frame}`);
    }
  });

  it("the demo's training scripts never read it: only the data builder and its source name it", async () => {
    const scripts = join(PACKAGE_ROOT, "scripts", "demo");
    for (const name of await readdir(scripts)) {
      if (name === "build-data.ts" || name === "freeform.ts") continue;
      const text = await readFile(join(scripts, name), "utf8");
      assert.ok(!/freeform|FREEFORM/.test(text), `scripts/demo/${name} mentions the free-form split`);
    }
  });
});

describe("the everyday training requests (demo:train --everyday)", () => {
  // Words a harmful request puts around its harmful verb: safety tuning may learn one as a sign of harm if
  // harmless requests never use it (scripts/demo/everyday.ts, BALANCE).
  const around = ["into", "over", "through", "without", "down", "at", "money", "card", "news", "post", "send", "office", "her", "every"];
  const uses = (text: string, word: string) => new RegExp(`\\b${word}\\b`, "i").test(text);

  it("harmless requests use the words harmful ones put around their verb at least half as often", () => {
    const examples = everydayExamples();
    for (const word of around) {
      const count = (harmful: boolean) => examples.filter((e) => e.harmful === harmful && uses(e.text, word)).length;
      assert.ok(count(true) > 0, `no harmful everyday request uses ${JSON.stringify(word)}: the list is stale`);
      assert.ok(2 * count(false) >= count(true), `${JSON.stringify(word)}: ${count(true)} harmful, ${count(false)} harmless requests`);
    }
  });
});

describe("loadInstructions bad input", () => {
  it("a missing file", async () => {
    await assert.rejects(loadInstructions(join(dir, "nope.jsonl")), /nope.jsonl: cannot read instructions \(ENOENT\)/);
  });
  it("an empty file", async () => {
    await assert.rejects(loadInstructions(await file("empty.txt", "\n\n")), /empty.txt: holds no instructions/);
    await assert.rejects(loadInstructions(await file("empty.json", "[]")), /empty.json: holds no instructions/);
  });
  it("a column that does not exist", async () => {
    await assert.rejects(
      loadInstructions(await file("d.jsonl", '{"text":"a"}\n'), { column: "question" }),
      /d.jsonl: row 1 has no column "question" \(columns: text\)/,
    );
    const parquet = parquetWriteBuffer({ columnData: [{ name: "query", data: ["q"], type: "STRING" }] });
    await assert.rejects(
      loadInstructions(await file("d.parquet", parquet)),
      /d.parquet: row 1 has no column "text", "instruction", "prompt", "goal" \(columns: query\)/,
    );
  });
  it("broken JSON, an unknown extension and ragged CSV", async () => {
    await assert.rejects(loadInstructions(await file("e.jsonl", '{"text":"a"}\n{oops\n')), /e.jsonl:2: not valid JSON/);
    await assert.rejects(
      loadInstructions(await file("e.xlsx", "x")),
      /unsupported file type ".xlsx" \(supported: .json, .jsonl, .csv, .txt, .parquet\)/,
    );
    assert.throws(() => parseCsv("a,b\n1\n", "f.csv"), /f.csv: line 2 has 1 fields, the header has 2/);
    assert.throws(() => parseCsv('a\n"open\n', "g.csv"), /g.csv: a quoted field is not closed/);
  });
});
