// Hub downloads against a local server that misbehaves the ways a hostile or broken mirror can: every
// value it controls is validated, downloads are verified, nothing is written outside the cache.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { describe, it, before, after } from "node:test";
import { resolveModel, snapshotDownload } from "../src/index.ts";

const SHA = "89abcdef0123456789abcdef0123456789abcdef";
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const gitSha1 = (b: Buffer) => createHash("sha1").update(`blob ${b.length}\0`).update(b).digest("hex");

interface FileSpec {
  body: Buffer;
  /** ETag header (default: git sha1 of the body, as the Hub gives for regular files). */
  etag?: string;
  /** X-Linked-Etag / X-Linked-Size, and a redirect to a CDN (another host name) that answers with its own ETag. */
  lfs?: boolean;
  /** Send only this many bytes of the body, closing the connection without a Content-Length. */
  truncateTo?: number;
  /** Compress the body when the client accepts gzip. */
  gzip?: boolean;
  /** Answer 503 this many times first. */
  failFirst?: number;
  /** Send the body in ten pieces, one every this many milliseconds. */
  trickleMs?: number;
  /** Send this many bytes of the body, then nothing more, keeping the connection open. */
  stallAfter?: number;
  /** Announce the body's size, then send these bytes after it, close-delimited. */
  extra?: Buffer;
}

let server: Server;
let endpoint: string;
let cdn: string;
let work: string;
const repos = new Map<string, { sha?: string; files: Map<string, FileSpec>; hang?: boolean; names?: string[] }>();
const requests: string[] = [];
/** Host and whether an Authorization header came, of every request. */
const authorizations: { host: string; url: string; authorized: boolean }[] = [];

function serveFile(req: IncomingMessage, res: ServerResponse, spec: FileSpec, viaCdn: boolean): void {
  if (spec.failFirst && spec.failFirst > 0) {
    spec.failFirst--;
    res.writeHead(503).end();
    return;
  }
  const body = spec.body;
  if (spec.lfs && !viaCdn) {
    res.writeHead(302, {
      location: `${cdn}${req.url}`,
      "x-linked-etag": `"${sha256(body)}"`,
      "x-linked-size": String(body.length),
      etag: '"cdn-redirect"',
    });
    return void res.end();
  }
  const etag = viaCdn ? '"cdn-etag-not-a-hash"' : `"${spec.etag ?? gitSha1(body)}"`;
  const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
  if (spec.gzip && /gzip/.test(String(req.headers["accept-encoding"]))) {
    const zipped = gzipSync(body);
    res.writeHead(200, { etag, "content-encoding": "gzip", "content-length": zipped.length });
    return void res.end(req.method === "HEAD" ? undefined : zipped);
  }
  if (spec.extra !== undefined && req.method !== "HEAD") {
    res.writeHead(200, { etag, connection: "close" }); // close-delimited: the size announced by HEAD is exceeded
    return void res.end(Buffer.concat([body, spec.extra]));
  }
  if (spec.stallAfter !== undefined && req.method !== "HEAD") {
    res.writeHead(200, { etag, "content-length": body.length });
    return void res.write(body.subarray(0, spec.stallAfter)); // and never the rest
  }
  if (spec.trickleMs !== undefined && req.method !== "HEAD") {
    res.writeHead(200, { etag, "content-length": body.length });
    const piece = Math.ceil(body.length / 10);
    let at = 0;
    const next = () => {
      res.write(body.subarray(at, at + piece));
      at += piece;
      if (at >= body.length) res.end();
      else setTimeout(next, spec.trickleMs);
    };
    return next();
  }
  if (spec.truncateTo !== undefined) {
    res.writeHead(200, { etag, connection: "close" }); // close-delimited: no Content-Length
    if (req.method === "HEAD") return void res.end();
    return void res.write(body.subarray(0, spec.truncateTo), () => res.socket?.destroy());
  }
  if (range && req.method !== "HEAD") {
    const start = Number(range[1]);
    if (start >= body.length) return void res.writeHead(416, { "content-range": `bytes */${body.length}` }).end();
    res.writeHead(206, {
      etag,
      "content-length": body.length - start,
      "content-range": `bytes ${start}-${body.length - 1}/${body.length}`,
    });
    return void res.end(body.subarray(start));
  }
  res.writeHead(200, { etag, "content-length": body.length });
  res.end(req.method === "HEAD" ? undefined : body);
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), "abliterate-hub-safety-"));
  server = createServer((req, res) => {
    requests.push(`${req.method} ${req.headers.host} ${req.url} ${req.headers["accept-encoding"] ?? ""} ${req.headers.range ?? ""}`);
    authorizations.push({ host: String(req.headers.host), url: String(req.url), authorized: req.headers.authorization !== undefined });
    const url = decodeURIComponent(req.url ?? "");
    let m = /^\/api\/(models|datasets)\/([\w.-]+\/[\w.-]+)\/revision\/([\w.-]+)$/.exec(url);
    if (m) {
      const repo = repos.get(`${m[1]}/${m[2]}`);
      if (!repo) return res.writeHead(404).end();
      if (repo.hang) return; // never answers
      if (m[2] === "org/html") return res.writeHead(200, { "content-type": "text/html" }).end("<!doctype html><html>a login page</html>");
      res.writeHead(200, { "content-type": "application/json" });
      const names = repo.names ?? [...repo.files.keys()];
      return res.end(JSON.stringify({ sha: repo.sha ?? SHA, siblings: names.map((rfilename) => ({ rfilename })) }));
    }
    m = /^\/(datasets\/)?([\w.-]+\/[\w.-]+)\/resolve\/(\w+)\/(.+)$/.exec(url);
    const spec = m && repos.get(`${m[1] ? "datasets" : "models"}/${m[2]}`)?.files.get(m[4]);
    if (!spec) return res.writeHead(404).end();
    serveFile(req, res, spec, req.headers.host?.startsWith("localhost") ?? false);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  endpoint = `http://127.0.0.1:${port}`;
  cdn = `http://localhost:${port}`;
});

after(async () => {
  server.close();
  await rm(work, { recursive: true, force: true });
});

let counter = 0;
/** A fresh cache folder inside a fresh folder, so that anything written beside the cache shows. */
async function freshCache(): Promise<{ cacheDir: string; outside: string }> {
  const outside = join(work, `case-${++counter}`);
  await mkdir(outside, { recursive: true });
  return { cacheDir: join(outside, "cache"), outside };
}
const listing = async (dir: string) => (await readdir(dir, { recursive: true })).sort();
const opts = (cacheDir: string) => ({ endpoint, cacheDir, offline: false, retries: 1, retryBaseMs: 5, timeoutMs: 2000 });

describe("Hub paths a server controls are validated", () => {
  it("an ETag that is a path is refused, and nothing is written outside the cache", async () => {
    repos.set("models/evil/etag", { files: new Map([["config.json", { body: Buffer.from("{}"), etag: "../../../../pwned" }]]) });
    const { cacheDir, outside } = await freshCache();
    await assert.rejects(
      snapshotDownload("model", "evil/etag", opts(cacheDir)),
      /gave the ETag "\\"..\/..\/..\/..\/pwned\\"", which is not a sha256 or git sha1 of the file; refusing to name a cache file after it/,
    );
    assert.deepEqual((await readdir(outside)).sort(), ["cache"]);
  });
  it("a commit id that is a path is refused", async () => {
    repos.set("models/evil/sha", { sha: "../../../outside", files: new Map([["config.json", { body: Buffer.from("{}") }]]) });
    const { cacheDir, outside } = await freshCache();
    await assert.rejects(
      snapshotDownload("model", "evil/sha", opts(cacheDir)),
      /the answer's sha "..\/..\/..\/outside" is not a 40-character hexadecimal commit id/,
    );
    assert.deepEqual(await readdir(outside), []);
  });
  for (const name of ["../escape.json", "/etc/passwd", "a/../../b.json", "a\\b.json", "./c.json"]) {
    it(`a file name ${JSON.stringify(name)} is refused`, async () => {
      repos.set("datasets/evil/names", { files: new Map([[name, { body: Buffer.from("[]") }]]) });
      const { cacheDir, outside } = await freshCache();
      await assert.rejects(
        snapshotDownload("dataset", "evil/names", opts(cacheDir)),
        /file name: .* is not a plain relative path inside the folder/,
      );
      assert.deepEqual(await readdir(outside), []);
    });
  }
  it("an index whose weight_map points outside the snapshot is refused before any shard is fetched", async () => {
    const index = Buffer.from(JSON.stringify({ weight_map: { "model.embed_tokens.weight": "../../../../outside.safetensors" } }));
    repos.set("models/evil/index", {
      files: new Map([
        ["config.json", { body: Buffer.from("{}") }],
        ["model.safetensors.index.json", { body: index }],
      ]),
    });
    const { cacheDir } = await freshCache();
    await assert.rejects(
      resolveModel("evil/index", opts(cacheDir)),
      /weight_map: "..\/..\/..\/..\/outside.safetensors" is not a plain relative path/,
    );
  });
  it("an HTML page instead of the API's JSON says so", async () => {
    repos.set("models/org/html", { files: new Map() });
    const { cacheDir } = await freshCache();
    await assert.rejects(
      snapshotDownload("model", "org/html", opts(cacheDir)),
      /the answer is not JSON \(it begins "<!doctype html><html>a login page<\/html>"\); is HF_ENDPOINT a Hugging Face Hub\?/,
    );
  });
});

describe("Hub downloads are verified", () => {
  it(
    "LFS files are named by X-Linked-Etag from the unredirected answer and checked against their sha256, fetched from the " + "CDN",
    async () => {
      const weights = Buffer.from("pretend safetensors bytes ".repeat(100));
      const config = Buffer.from('{"model_type": "llama"}');
      repos.set("models/org/lfs", {
        files: new Map([
          ["config.json", { body: config }],
          ["model.safetensors", { body: weights, lfs: true }],
        ]),
      });
      const { cacheDir } = await freshCache();
      const snapshot = await snapshotDownload("model", "org/lfs", opts(cacheDir));
      assert.deepEqual(await readFile(join(snapshot, "model.safetensors")), weights);
      assert.deepEqual(await readFile(join(snapshot, "config.json")), config);
      const blobs = await readdir(join(cacheDir, "models--org--lfs", "blobs"));
      assert.deepEqual(blobs.sort(), [gitSha1(config), sha256(weights)].sort());
      assert.ok(
        requests.some((r) => r.startsWith("GET localhost") && r.includes("model.safetensors")),
        "the body came from the CDN",
      );
    },
  );
  it("a body whose hash differs from the announced ETag is discarded", async () => {
    repos.set("models/org/liar", {
      files: new Map([["config.json", { body: Buffer.from('{"a": 1}'), etag: sha256(Buffer.from("something else")) }]]),
    });
    const { cacheDir } = await freshCache();
    await assert.rejects(
      snapshotDownload("model", "org/liar", opts(cacheDir)),
      /has sha256 [0-9a-f]{64}, not the [0-9a-f]{64} the server announced; the download was discarded/,
    );
    const blobs = await readdir(join(cacheDir, "models--org--liar", "blobs"));
    assert.deepEqual(blobs, [], "no blob, no partial file");
  });
  it("a close-delimited body cut short is not cached as complete", async () => {
    const body = Buffer.from("0123456789".repeat(50));
    const spec: FileSpec = { body, truncateTo: 100 };
    repos.set("models/org/short", { files: new Map([["config.json", spec]]) });
    const { cacheDir } = await freshCache();
    await assert.rejects(
      snapshotDownload("model", "org/short", opts(cacheDir)),
      /git-sha1 [0-9a-f]{40}, not the [0-9a-f]{40} the server announced|broke off after 100 bytes/,
    );
    assert.deepEqual(
      (await readdir(join(cacheDir, "models--org--short", "snapshots"), { recursive: true }).catch(() => [])).filter((f) =>
        f.endsWith("config.json"),
      ),
      [],
    );
    delete spec.truncateTo;
    const snapshot = await snapshotDownload("model", "org/short", opts(cacheDir));
    assert.deepEqual(await readFile(join(snapshot, "config.json")), body);
  });
  it("a partial download left by an interrupted run is resumed with a Range request", async () => {
    const body = Buffer.from("abcdefghij".repeat(300));
    repos.set("models/org/resume", { files: new Map([["config.json", { body, lfs: true }]]) });
    const { cacheDir } = await freshCache();
    const blobs = join(cacheDir, "models--org--resume", "blobs");
    await mkdir(blobs, { recursive: true });
    await writeFile(join(blobs, `${sha256(body)}.incomplete`), body.subarray(0, 1000));
    const snapshot = await snapshotDownload("model", "org/resume", opts(cacheDir));
    assert.deepEqual(await readFile(join(snapshot, "config.json")), body);
    assert.ok(
      requests.some((r) => r.includes("org/resume") && r.endsWith("bytes=1000-")),
      "asked for the rest only",
    );
  });
  it("bodies are asked for uncompressed, so a gzipping server cannot break the size check", async () => {
    const body = Buffer.from("x".repeat(2000));
    repos.set("models/org/gzip", { files: new Map([["config.json", { body, gzip: true }]]) });
    const { cacheDir } = await freshCache();
    const snapshot = await snapshotDownload("model", "org/gzip", opts(cacheDir));
    assert.deepEqual(await readFile(join(snapshot, "config.json")), body);
    assert.ok(
      requests.filter((r) => r.includes("org/gzip") && r.includes("resolve")).every((r) => / identity /.test(r)),
      "Accept-Encoding: identity",
    );
  });
  it("server errors are retried with backoff", async () => {
    const body = Buffer.from("{}");
    repos.set("models/org/flaky", { files: new Map([["config.json", { body, failFirst: 1 }]]) });
    const { cacheDir } = await freshCache();
    const before = requests.length;
    const snapshot = await snapshotDownload("model", "org/flaky", opts(cacheDir));
    assert.deepEqual(await readFile(join(snapshot, "config.json")), body);
    const asked = requests.slice(before).filter((r) => r.includes("org/flaky") && r.includes("resolve") && r.includes("config.json"));
    // The first request is answered 503; the same request is then made again (the retry) before the download goes on.
    assert.ok(asked.length >= 2 && asked[1] === asked[0], `no retry of the failed request: ${JSON.stringify(asked)}`);
  });
  it("a server that never answers fails after the timeout instead of hanging", async () => {
    repos.set("models/org/hang", { files: new Map(), hang: true });
    const { cacheDir } = await freshCache();
    const started = Date.now();
    await assert.rejects(
      snapshotDownload("model", "org/hang", { ...opts(cacheDir), timeoutMs: 300, retries: 1 }),
      /no answer within 0.3 s \(HF_HUB_DOWNLOAD_TIMEOUT\), 2 attempts/,
    );
    assert.ok(Date.now() - started < 5000);
  });
});

describe("Hub model file selection", () => {
  it("downloads the config and tokenizer files and the shards the index names, not consolidated or adapter weights", async () => {
    const shard = Buffer.from("shard bytes");
    const files = new Map<string, FileSpec>([
      ["config.json", { body: Buffer.from("{}") }],
      ["tokenizer.json", { body: Buffer.from("{}") }],
      ["chat_template.jinja", { body: Buffer.from("{{ messages }}") }],
      ["model.safetensors.index.json", { body: Buffer.from(JSON.stringify({ weight_map: { a: "model-00001-of-00001.safetensors" } })) }],
      ["model-00001-of-00001.safetensors", { body: shard, lfs: true }],
      ["consolidated.safetensors", { body: Buffer.from("no"), lfs: true }],
      ["adapter_model.safetensors", { body: Buffer.from("no"), lfs: true }],
      ["pytorch_model.bin", { body: Buffer.from("no"), lfs: true }],
      ["README.md", { body: Buffer.from("no") }],
    ]);
    repos.set("models/org/mistralish", { files });
    const { cacheDir } = await freshCache();
    const snapshot = await resolveModel("org/mistralish", opts(cacheDir));
    assert.deepEqual(await listing(snapshot), [
      "chat_template.jinja",
      "config.json",
      "model-00001-of-00001.safetensors",
      "model.safetensors.index.json",
      "tokenizer.json",
    ]);
  });
});

describe("Hub downloads: timeouts, sizes, resumes, tokens and settings (#23 item 9)", () => {
  it("the timeout bounds idle time, not total time: a slow but steady body is downloaded whole", async () => {
    const body = Buffer.from("0123456789".repeat(100));
    repos.set("models/org/slow", { files: new Map([["config.json", { body, trickleMs: 150 }]]) });
    const { cacheDir } = await freshCache();
    const started = Date.now();
    // Ten pieces 150 ms apart take 1.35 s, over four times the 300 ms timeout, with no gap longer than it.
    const snapshot = await snapshotDownload("model", "org/slow", { ...opts(cacheDir), timeoutMs: 300, retries: 0 });
    assert.ok(Date.now() - started > 1000, "the body did trickle");
    assert.deepEqual(await readFile(join(snapshot, "config.json")), body);
  });
  it("a body that stalls is cut after the idle timeout, the partial file kept for the next run", async () => {
    const body = Buffer.from("abcdefghij".repeat(100));
    repos.set("models/org/stall", { files: new Map([["config.json", { body, stallAfter: 400 }]]) });
    const { cacheDir } = await freshCache();
    await assert.rejects(
      snapshotDownload("model", "org/stall", { ...opts(cacheDir), timeoutMs: 300, retries: 0 }),
      /config.json: the download of .* broke off after 400 bytes \(nothing for 0.3 s\); run again to resume it/,
    );
    const partial = join(cacheDir, "models--org--stall", "blobs", `${gitSha1(body)}.incomplete`);
    assert.equal((await readFile(partial)).length, 400);
  });
  it("a server sending more than it announced is cut at the announced size, and nothing is kept", async () => {
    const body = Buffer.from("x".repeat(1000));
    repos.set("models/org/bloat", { files: new Map([["config.json", { body, extra: Buffer.alloc(5_000_000) }]]) });
    const { cacheDir } = await freshCache();
    await assert.rejects(
      snapshotDownload("model", "org/bloat", opts(cacheDir)),
      /config.json: .* sent more than the 1000 bytes announced; the download was discarded/,
    );
    assert.deepEqual(await readdir(join(cacheDir, "models--org--bloat", "blobs")), []);
  });
  it("a partial file that is already complete (killed during the hash) is hashed, not asked for again (no 416)", async () => {
    const body = Buffer.from("complete ".repeat(200));
    repos.set("models/org/whole", { files: new Map([["model.safetensors", { body, lfs: true }]]) });
    const { cacheDir } = await freshCache();
    const blobs = join(cacheDir, "models--org--whole", "blobs");
    await mkdir(blobs, { recursive: true });
    await writeFile(join(blobs, `${sha256(body)}.incomplete`), body);
    const before = requests.length;
    const snapshot = await snapshotDownload("model", "org/whole", opts(cacheDir));
    assert.deepEqual(await readFile(join(snapshot, "model.safetensors")), body);
    assert.ok(!requests.slice(before).some((r) => r.startsWith("GET") && r.includes("org/whole/resolve")), "no body asked for");
  });
  it("a partial file longer than the file is started over", async () => {
    const body = Buffer.from("short");
    repos.set("models/org/longer", { files: new Map([["model.safetensors", { body, lfs: true }]]) });
    const { cacheDir } = await freshCache();
    const blobs = join(cacheDir, "models--org--longer", "blobs");
    await mkdir(blobs, { recursive: true });
    await writeFile(join(blobs, `${sha256(body)}.incomplete`), "far longer than the file");
    const snapshot = await snapshotDownload("model", "org/longer", opts(cacheDir));
    assert.deepEqual(await readFile(join(snapshot, "model.safetensors")), body);
  });
  it("the token goes to the Hub's host only, never to the host a redirect leads to", async () => {
    const body = Buffer.from("weights ".repeat(50));
    repos.set("models/org/gated", { files: new Map([["model.safetensors", { body, lfs: true }]]) });
    const { cacheDir } = await freshCache();
    const saved = process.env.HF_TOKEN;
    process.env.HF_TOKEN = "hf_secret";
    const before = authorizations.length;
    try {
      await snapshotDownload("model", "org/gated", opts(cacheDir));
    } finally {
      if (saved === undefined) delete process.env.HF_TOKEN;
      else process.env.HF_TOKEN = saved;
    }
    const seen = authorizations.slice(before);
    const hub = seen.filter((r) => r.host.startsWith("127.0.0.1"));
    const other = seen.filter((r) => r.host.startsWith("localhost"));
    assert.ok(hub.length > 0 && hub.every((r) => r.authorized), "the Hub's requests carry the token");
    assert.ok(other.length > 0, "the body came from the other host");
    assert.deepEqual(
      other.filter((r) => r.authorized),
      [],
      "no request to the redirect's host carries the token",
    );
  });
  it("a cache folder that links outside the cache is refused before anything is created there", async () => {
    const { cacheDir, outside } = await freshCache();
    const elsewhere = join(outside, "elsewhere");
    await mkdir(elsewhere);
    await mkdir(cacheDir);
    await symlink(elsewhere, join(cacheDir, "models--org--linked"));
    repos.set("models/org/linked", { files: new Map([["config.json", { body: Buffer.from("{}") }]]) });
    await assert.rejects(snapshotDownload("model", "org/linked", opts(cacheDir)), /lies outside the cache folder/);
    assert.deepEqual(await readdir(elsewhere), [], "no blobs/ folder was made outside the cache");
  });
  it("a negative timeout, or an endpoint without a scheme, is refused at once instead of retried", async () => {
    const { cacheDir } = await freshCache();
    const started = Date.now();
    await assert.rejects(
      snapshotDownload("model", "org/any", { ...opts(cacheDir), timeoutMs: -1, retries: 5 }),
      /timeoutMs is -1; expected a positive number of milliseconds/,
    );
    await assert.rejects(
      snapshotDownload("model", "org/any", { ...opts(cacheDir), endpoint: "localhost:8080", retries: 5 }),
      /the endpoint "localhost:8080" is not an http\(s\) URL/,
    );
    const saved = { timeout: process.env.HF_HUB_DOWNLOAD_TIMEOUT, endpoint: process.env.HF_ENDPOINT };
    try {
      process.env.HF_HUB_DOWNLOAD_TIMEOUT = "-5";
      await assert.rejects(
        snapshotDownload("model", "org/any", { endpoint, cacheDir, offline: false, retries: 5 }),
        /HF_HUB_DOWNLOAD_TIMEOUT is "-5"; expected a positive number of seconds/,
      );
      delete process.env.HF_HUB_DOWNLOAD_TIMEOUT;
      process.env.HF_ENDPOINT = "huggingface.co";
      await assert.rejects(
        snapshotDownload("model", "org/any", { cacheDir, offline: false, retries: 5 }),
        /HF_ENDPOINT "huggingface.co" is not/,
      );
    } finally {
      for (const [name, value] of [
        ["HF_HUB_DOWNLOAD_TIMEOUT", saved.timeout],
        ["HF_ENDPOINT", saved.endpoint],
      ] as const)
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
    }
    assert.ok(Date.now() - started < 2000, "no retries");
  });
});

describe("Hub file lists that cannot lie on disk are refused before any download (#23 item 12)", () => {
  it("a file name part longer than 255 bytes (ENAMETOOLONG)", async () => {
    const name = `data/${"x".repeat(300)}.parquet`;
    repos.set("datasets/org/longname", { files: new Map([[name, { body: Buffer.from("x") }]]) });
    const { cacheDir } = await freshCache();
    const before = requests.length;
    await assert.rejects(snapshotDownload("dataset", "org/longname", opts(cacheDir)), /has a name part of 308 bytes, more than 255/);
    assert.ok(!requests.slice(before).some((r) => r.includes("resolve")), "nothing downloaded");
  });
  it("a file that is also the folder of another (EEXIST)", async () => {
    repos.set("datasets/org/clash", {
      files: new Map([
        ["data", { body: Buffer.from("x") }],
        ["data/train.jsonl", { body: Buffer.from("{}") }],
      ]),
    });
    const { cacheDir } = await freshCache();
    await assert.rejects(
      snapshotDownload("dataset", "org/clash", opts(cacheDir)),
      /"data" is listed both as a file and as the folder of "data\/train.jsonl"/,
    );
  });
});
