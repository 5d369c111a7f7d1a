// Hub downloads against a local HTTP server on 127.0.0.1 that serves the hub's URL layout.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createServer, type Server } from "node:http";
import { mkdtemp, readdir, readFile, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it, before, after } from "node:test";
import { parquetWriteBuffer } from "hyparquet-writer";
import { loadInstructionSource, loadModel, lastPositionLogits } from "../src/index.ts";
import { assertClose, LOGIT_TOLERANCE, modelDir, reference } from "./helpers/reference.ts";

const SHA = "0123456789abcdef0123456789abcdef01234567";
let server: Server;
let endpoint: string;
let home: string;
const requests: string[] = [];
const repos = new Map<string, Map<string, Buffer>>();

before(async () => {
  home = await mkdtemp(join(tmpdir(), "abliterate-hf-"));
  const model = new Map<string, Buffer>();
  for (const f of await readdir(modelDir("llama"))) model.set(f, await readFile(join(modelDir("llama"), f)));
  model.set("README.md", Buffer.from("not downloaded: the model filter skips it"));
  repos.set("models/org/tiny", model);
  const parquet = (xs: string[]) => Buffer.from(parquetWriteBuffer({ columnData: [{ name: "text", data: xs, type: "STRING" }] }));
  repos.set(
    "datasets/org/instructions",
    new Map([
      ["data/train-00000-of-00001.parquet", parquet(["Write a poem.", "Name a color."])],
      ["data/test-00000-of-00001.parquet", parquet(["Say hi."])],
      ["README.md", Buffer.from("card")],
    ]),
  );
  server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const url = decodeURIComponent(req.url ?? "");
    let m = /^\/api\/(models|datasets)\/(\w+\/\w+)\/revision\/main$/.exec(url);
    if (m) {
      const files = repos.get(`${m[1]}/${m[2]}`);
      if (!files) return res.writeHead(404).end();
      res.writeHead(200, { "content-type": "application/json" });
      return res.end(JSON.stringify({ id: m[2], sha: SHA, siblings: [...files.keys()].map((rfilename) => ({ rfilename })) }));
    }
    m = /^\/(datasets\/)?(\w+\/\w+)\/resolve\/(\w+)\/(.+)$/.exec(url);
    if (m && m[3] === SHA) {
      const body = repos.get(`${m[1] ? "datasets" : "models"}/${m[2]}`)?.get(m[4]);
      if (!body) return res.writeHead(404).end();
      res.writeHead(200, { etag: `"${createHash("sha256").update(body).digest("hex")}"`, "content-length": body.length });
      return res.end(body);
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  endpoint = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  process.env.HF_ENDPOINT = endpoint;
  process.env.HF_HOME = home;
  delete process.env.HF_HUB_CACHE;
  delete process.env.HF_HUB_OFFLINE;
});

after(async () => {
  delete process.env.HF_ENDPOINT;
  delete process.env.HF_HOME;
  delete process.env.HF_HUB_OFFLINE;
  server.close();
  await rm(home, { recursive: true, force: true });
});

describe("Hub models", () => {
  it("downloads a model into the standard cache layout and loads it", async () => {
    const ref = reference("llama");
    const model = await loadModel("org/tiny");
    assertClose(
      lastPositionLogits(model, ref.seqs).map((r) => [...r]),
      ref.last_logits,
      LOGIT_TOLERANCE,
      "hub model logits",
    );
    model.dispose();
    const storage = join(home, "hub", "models--org--tiny");
    assert.equal((await readFile(join(storage, "refs", "main"), "utf8")).trim(), SHA);
    const snapshot = await readdir(join(storage, "snapshots", SHA));
    assert.deepEqual(snapshot.sort(), ["config.json", "model.safetensors"]);
    assert.match(await readlink(join(storage, "snapshots", SHA, "config.json")), /^\.\.\/\.\.\/blobs\/[0-9a-f]{64}$/);
    assert.ok(!requests.some((r) => r.includes("README.md") && r.includes("tiny")), "files outside the model filter are not downloaded");
  });

  it("HF_HUB_OFFLINE=1 loads from the cache without a single request", async () => {
    process.env.HF_HUB_OFFLINE = "1";
    const before = requests.length;
    try {
      const model = await loadModel("org/tiny");
      model.dispose();
      assert.equal(requests.length, before);
      await assert.rejects(
        loadModel("org/absent"),
        /model org\/absent@main is not in the cache .* and HF_HUB_OFFLINE=1 forbids downloading it/,
      );
      assert.equal(requests.length, before);
    } finally {
      delete process.env.HF_HUB_OFFLINE;
    }
  });

  it("a repository the hub does not have", async () => {
    await assert.rejects(
      loadModel("org/missing"),
      /no local folder org\/missing, and as a Hub model id: model org\/missing: .*answered 404/,
    );
  });
});

describe("Hub datasets", () => {
  it("reads one split's parquet files", async () => {
    assert.deepEqual(await loadInstructionSource("org/instructions:train"), ["Write a poem.", "Name a color."]);
    assert.deepEqual(await loadInstructionSource("org/instructions:test"), ["Say hi."]);
    assert.deepEqual(await loadInstructionSource("org/instructions"), ["Write a poem.", "Name a color."]);
  });
  it("a split that does not exist", async () => {
    await assert.rejects(
      loadInstructionSource("org/instructions:validation"),
      /dataset org\/instructions@main has no files to download that match/,
    );
  });
});
