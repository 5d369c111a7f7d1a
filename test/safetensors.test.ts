import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile, cp, readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it, before, after } from "node:test";
import {
  CheckpointWeights,
  decodeToFloat32,
  encodeFromFloat32,
  floatTensor,
  planShards,
  SafetensorsFile,
  writeCheckpointWeights,
  writeSafetensors,
} from "../src/index.ts";
import { encodeHeader } from "../src/safetensors/write.ts";
import { DTYPE_BYTES } from "../src/safetensors/dtype.ts";
import { modelDir } from "./helpers/reference.ts";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "abliterate-st-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A safetensors file from a raw header object and data bytes. */
async function rawFile(name: string, header: unknown, data: Uint8Array, lengthOverride?: number): Promise<string> {
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(lengthOverride ?? json.length));
  const path = join(dir, name);
  await writeFile(path, Buffer.concat([length, json, data]));
  return path;
}

describe("dtype conversion", () => {
  it("decodes hand-checked F16 and BF16 bit patterns", () => {
    // F16: 1.0 = 0x3c00, -2.0 = 0xc000, 65504 = 0x7bff, smallest subnormal = 0x0001
    const f16 = new Uint8Array(new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00]).buffer);
    assert.deepEqual([...decodeToFloat32(f16, "F16")], [1, -2, 65504, 2 ** -24, Infinity]);
    // BF16: 1.0 = 0x3f80, -0.5 = 0xbf00, 3.140625 = 0x4049
    const bf16 = new Uint8Array(new Uint16Array([0x3f80, 0xbf00, 0x4049]).buffer);
    assert.deepEqual([...decodeToFloat32(bf16, "BF16")], [1, -0.5, 3.140625]);
  });

  it("rounds to nearest, ties to even", () => {
    // BF16 keeps 8 significant bits: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 -> even (1).
    // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6 -> even (1 + 2^-6).
    const bf = decodeToFloat32(encodeFromFloat32(new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -16]), "BF16"), "BF16");
    assert.deepEqual([...bf], [1, 1 + 2 ** -6, 1 + 2 ** -7]);
    // F16 keeps 11 significant bits: 1 + 2^-11 -> 1; 1 + 3 * 2^-11 -> 1 + 2^-9.
    const h = decodeToFloat32(
      encodeFromFloat32(new Float32Array([1 + 2 ** -11, 1 + 3 * 2 ** -11, 70000, 2 ** -25, 3 * 2 ** -25]), "F16"),
      "F16",
    );
    assert.deepEqual([...h], [1, 1 + 2 ** -9, Infinity, 0, 2 ** -23]);
  });

  it("round-trips every F16 and BF16 value exactly", () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    for (const dtype of ["F16", "BF16"] as const) {
      const bytes = new Uint8Array(all.buffer);
      const again = encodeFromFloat32(decodeToFloat32(bytes, dtype), dtype);
      const a = new Uint16Array(again.buffer);
      for (let i = 0; i < 65536; i++) {
        const isNaN = Number.isNaN(decodeToFloat32(bytes.subarray(2 * i, 2 * i + 2), dtype)[0]);
        if (!isNaN) assert.equal(a[i], i, `${dtype} 0x${i.toString(16)}`);
      }
    }
  });

  it("decodes into and encodes into given arrays (views at an offset included) exactly as into new ones", () => {
    const values = Float32Array.from({ length: 37 }, (_, i) => Math.sin(i) * 10 ** ((i % 9) - 4));
    for (const dtype of ["F32", "F16", "BF16"] as const) {
      const bytes = encodeFromFloat32(values, dtype);
      // An output 3 rows into a larger buffer, as a row-by-row edit writes them.
      const size = DTYPE_BYTES[dtype];
      const into = new Uint8Array(bytes.length + 6 * size);
      encodeFromFloat32(values, dtype, into.subarray(3 * size, 3 * size + bytes.length));
      assert.deepEqual(into.subarray(3 * size, 3 * size + bytes.length), bytes, `${dtype} encode into`);
      const decoded = new Float32Array(values.length + 4);
      decodeToFloat32(bytes, dtype, decoded.subarray(2, 2 + values.length));
      assert.deepEqual(decoded.subarray(2, 2 + values.length), decodeToFloat32(bytes, dtype), `${dtype} decode into`);
      assert.throws(
        () => decodeToFloat32(bytes, dtype, new Float32Array(values.length - 1)),
        new RegExp(`decoding 37 ${dtype} values into an array of 36`),
      );
      assert.throws(
        () => encodeFromFloat32(values, dtype, new Uint8Array(bytes.length + 1)),
        new RegExp(`encoding 37 ${dtype} values \\(${bytes.length} bytes\\) into ${bytes.length + 1} bytes`),
      );
    }
  });
});

describe("writer and reader", () => {
  it("round-trips F32, F16 and BF16 tensors with metadata and an 8-byte aligned header", async () => {
    const values = new Float32Array([0, 1.5, -2.25, 3.75, 1e-3, -7]);
    const path = join(dir, "roundtrip.safetensors");
    await writeSafetensors(
      path,
      [floatTensor("a", values, [2, 3], "F32"), floatTensor("b", values, [6], "F16"), floatTensor("c", values, [3, 2], "BF16")],
      { format: "pt", note: "hello" },
    );
    const raw = await readFile(path);
    assert.equal(Number(raw.readBigUInt64LE(0)) % 8, 0);
    const st = await SafetensorsFile.open(path);
    assert.deepEqual(st.header.metadata, { format: "pt", note: "hello" });
    assert.deepEqual(st.info("a").shape, [2, 3]);
    assert.deepEqual([...(await st.readFloat32("a"))], [...values]);
    assert.deepEqual(
      [...(await st.readFloat32("b"))],
      [0, 1.5, -2.25, 3.75, decodeToFloat32(encodeFromFloat32(new Float32Array([1e-3]), "F16"), "F16")[0], -7],
    );
    assert.equal(st.info("c").dtype, "BF16");
    await st.close();
  });

  it("copies any dtype byte for byte", async () => {
    const bytes = new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255]);
    const path = join(dir, "int.safetensors");
    await writeSafetensors(path, [{ name: "ids", dtype: "I64", shape: [2], bytes: () => bytes }]);
    const st = await SafetensorsFile.open(path);
    assert.deepEqual(await st.readBytes("ids"), bytes);
    await assert.rejects(st.readFloat32("ids"), /tensor ids: dtype I64 cannot be read as float32/);
    await st.close();
  });

  it("plans shards by size and writes an index that the checkpoint reader follows", async () => {
    const t = (name: string, n: number) => floatTensor(name, new Float32Array(n).fill(n), [n]);
    const tensors = [t("x", 10), t("y", 10), t("z", 30), t("w", 5)];
    const plan = planShards(tensors, 100); // 40 + 40 bytes fit in 100; z (120) stands alone; w follows
    assert.deepEqual(
      plan.map((s) => s.tensors.map((x) => x.name)),
      [["x", "y"], ["z"], ["w"]],
    );
    assert.deepEqual(
      plan.map((s) => s.file),
      ["model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"],
    );
    const out = join(dir, "sharded");
    await (await import("node:fs/promises")).mkdir(out);
    await writeCheckpointWeights(out, plan);
    const index = JSON.parse(await readFile(join(out, "model.safetensors.index.json"), "utf8"));
    assert.equal(index.metadata.total_size, 55 * 4);
    assert.equal(index.weight_map.z, "model-00002-of-00003.safetensors");
    const ckpt = await CheckpointWeights.open(out);
    assert.deepEqual([...(await ckpt.readFloat32("w"))], [5, 5, 5, 5, 5]);
    await ckpt.close();
    assert.deepEqual(
      planShards(tensors, 1e9).map((s) => s.file),
      ["model.safetensors"],
    );
  });

  it("refuses to overwrite an existing file", async () => {
    const path = join(dir, "exists.safetensors");
    await writeFile(path, "keep me");
    await assert.rejects(
      writeSafetensors(path, [floatTensor("a", new Float32Array(1), [1])]),
      /exists.safetensors exists already; choose another path or allow overwriting/,
    );
    assert.equal(await readFile(path, "utf8"), "keep me");
  });

  it("rejects names that shadow object properties twice, and non-string metadata", () => {
    const t = (name: string) => floatTensor(name, new Float32Array(1), [1]);
    assert.throws(() => encodeHeader([t("constructor"), t("constructor")]), /tensor constructor appears twice/);
    assert.doesNotThrow(() => encodeHeader([t("constructor"), t("toString")]));
    assert.throws(() => encodeHeader([t("a")], { n: 5 as unknown as string }), /metadata n must be a string/);
  });
  it("an interrupted write leaves no file behind", async () => {
    const path = join(dir, "interrupted.safetensors");
    async function* boom() {
      yield new Uint8Array(4);
      throw new Error("disk full");
    }
    await assert.rejects(writeSafetensors(path, [{ name: "a", dtype: "F32", shape: [2], bytes: boom }]), /disk full/);
    assert.deepEqual(
      (await readdir(dir)).filter((f) => f.includes("interrupted")),
      [],
    );
  });
  it("rejects a tensor whose values do not fill its shape, and duplicate names", () => {
    assert.throws(() => floatTensor("a", new Float32Array(5), [2, 3]), /a: 5 values do not fill shape \[2, 3\] \(6\)/);
    assert.throws(
      () => encodeHeader([floatTensor("a", new Float32Array(1), [1]), floatTensor("a", new Float32Array(1), [1])]),
      /tensor a appears twice/,
    );
  });
});

describe("bad safetensors files give errors naming the file and tensor", () => {
  const f32 = (n: number) => new Uint8Array(n * 4);
  it("a truncated file", async () => {
    const path = join(dir, "tiny.safetensors");
    await writeFile(path, Buffer.from([1, 2, 3]));
    await assert.rejects(SafetensorsFile.open(path), new RegExp(`${path}: file is 3 bytes, shorter than the 8-byte header length`));
  });
  it("a header length past the end", async () => {
    const path = await rawFile("longheader.safetensors", {}, new Uint8Array(0), 1000);
    await assert.rejects(SafetensorsFile.open(path), /longheader.safetensors: header length 1000 runs past the end of the file/);
  });
  it("a header that is not JSON", async () => {
    const path = join(dir, "notjson.safetensors");
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(4n);
    await writeFile(path, Buffer.concat([length, Buffer.from("{abc")]));
    await assert.rejects(SafetensorsFile.open(path), /notjson.safetensors: header is not valid JSON/);
  });
  it("data that ends before a tensor does", async () => {
    const path = await rawFile("short.safetensors", { w: { dtype: "F32", shape: [4], data_offsets: [0, 16] } }, f32(2));
    await assert.rejects(
      SafetensorsFile.open(path),
      /short.safetensors: tensor w: data_offsets \[0, 16\] run past the end of the data \(8 bytes\); the file is truncated/,
    );
  });
  it("overlapping offsets", async () => {
    const path = await rawFile(
      "overlap.safetensors",
      {
        a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
        b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
      },
      f32(3),
    );
    await assert.rejects(SafetensorsFile.open(path), /overlap.safetensors: tensors a \[0, 8\] and b \[4, 12\] overlap/);
  });
  it("offsets that disagree with the shape", async () => {
    const path = await rawFile("size.safetensors", { a: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, f32(3));
    await assert.rejects(
      SafetensorsFile.open(path),
      /size.safetensors: tensor a: data_offsets \[0, 8\] hold 8 bytes, but F32 \[3\] needs 12/,
    );
  });
  it("an unknown dtype", async () => {
    const path = await rawFile("dtype.safetensors", { a: { dtype: "F128", shape: [1], data_offsets: [0, 16] } }, f32(4));
    await assert.rejects(SafetensorsFile.open(path), /dtype.safetensors: tensor a: unknown dtype "F128"/);
  });
  it("a missing tensor", async () => {
    const path = await rawFile("one.safetensors", { a: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }, f32(1));
    const st = await SafetensorsFile.open(path);
    await assert.rejects(st.readFloat32("b"), /one.safetensors: no tensor named b/);
    await st.close();
  });
  it("a file that shrinks after it was opened", async () => {
    const path = await rawFile("shrinks.safetensors", { a: { dtype: "F32", shape: [4], data_offsets: [0, 16] } }, f32(4));
    const st = await SafetensorsFile.open(path);
    const full = await readFile(path);
    await writeFile(path, full.subarray(0, full.length - 8));
    await assert.rejects(st.readBytes("a"), /shrinks.safetensors: tensor a: read 8 of 16 bytes; the file changed or is truncated/);
    await st.close();
  });
  it("a byte range outside the tensor, or a buffer of the wrong length to read it into", async () => {
    const path = await rawFile(
      "ranges.safetensors",
      { a: { dtype: "F32", shape: [4], data_offsets: [0, 16] } },
      Uint8Array.from({ length: 16 }, (_, i) => i + 1),
    );
    const st = await SafetensorsFile.open(path);
    await assert.rejects(st.readRange("a", 8, 20), /ranges.safetensors: tensor a: byte range \[8, 20\) is outside its 16 bytes/);
    await assert.rejects(st.readRange("a", 8, 4), /ranges.safetensors: tensor a: byte range \[8, 4\) is outside its 16 bytes/);
    assert.throws(() => st.fileRange("a", -1, 4), /ranges.safetensors: tensor a: byte range \[-1, 4\) is outside its 16 bytes/);
    const into = new Uint8Array(4).fill(7);
    await assert.rejects(
      st.readRange("a", 0, 8, into),
      /ranges.safetensors: tensor a: byte range \[0, 8\) is 8 bytes, the buffer to read it into holds 4/,
    );
    assert.deepEqual([...into], [7, 7, 7, 7]);
    const part = new Uint8Array(8);
    assert.equal(await st.readRange("a", 4, 12, part), part);
    assert.deepEqual([...part], [5, 6, 7, 8, 9, 10, 11, 12]);
    await st.close();
  });
  it("a header length one byte short, which shifts every tensor by a byte", async () => {
    const header = Buffer.from(JSON.stringify({ a: { dtype: "F32", shape: [2], data_offsets: [0, 8] } }));
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(header.length - 1));
    const path = join(dir, "shifted.safetensors");
    await writeFile(path, Buffer.concat([length, header, f32(2)]));
    await assert.rejects(SafetensorsFile.open(path), /shifted.safetensors: header is not valid JSON/);
  });
  it("trailing bytes after the data, and a gap between tensors", async () => {
    const trailing = await rawFile("trailing.safetensors", { a: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }, f32(2));
    await assert.rejects(
      SafetensorsFile.open(trailing),
      /trailing.safetensors: the tensors hold 4 bytes of data but the file has 8 after its header; .* trailing bytes/,
    );
    const gap = await rawFile(
      "gap.safetensors",
      { a: { dtype: "F32", shape: [1], data_offsets: [0, 4] }, b: { dtype: "F32", shape: [1], data_offsets: [8, 12] } },
      f32(3),
    );
    await assert.rejects(
      SafetensorsFile.open(gap),
      /gap.safetensors: tensor b starts at byte 8 of the data, leaving bytes \[4, 8\) that no tensor holds/,
    );
  });
  it("a header that is not UTF-8, or does not start with {", async () => {
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(4n);
    const bad = join(dir, "utf8.safetensors");
    await writeFile(bad, Buffer.concat([length, Buffer.from([0x7b, 0xff, 0xfe, 0x7d])]));
    await assert.rejects(SafetensorsFile.open(bad), /utf8.safetensors: header is not valid UTF-8/);
    const list = join(dir, "list.safetensors");
    await writeFile(list, Buffer.concat([length, Buffer.from("[]  ")]));
    await assert.rejects(SafetensorsFile.open(list), /list.safetensors: header does not start with "\{"/);
  });
  it("__metadata__ that is not an object of strings", async () => {
    const notObject = await rawFile("meta1.safetensors", { __metadata__: "text" }, new Uint8Array(0));
    await assert.rejects(SafetensorsFile.open(notObject), /meta1.safetensors: __metadata__ is not an object of strings/);
    const notString = await rawFile("meta2.safetensors", { __metadata__: { format: 5 } }, new Uint8Array(0));
    await assert.rejects(SafetensorsFile.open(notString), /meta2.safetensors: __metadata__.format is not a string \(got 5\)/);
  });
  it("an index that points at the wrong shard", async () => {
    const copy = join(dir, "badindex");
    await cp(modelDir("llama", "sharded"), copy, { recursive: true });
    const indexPath = join(copy, "model.safetensors.index.json");
    const index = JSON.parse(await readFile(indexPath, "utf8"));
    const [first, second] = (await readdir(copy)).filter((f) => f.endsWith(".safetensors")).sort();
    index.weight_map["model.norm.weight"] = index.weight_map["model.norm.weight"] === first ? second : first;
    await writeFile(indexPath, JSON.stringify(index));
    await assert.rejects(
      CheckpointWeights.open(copy),
      /weight_map puts model.norm.weight in model-0000[12]-of-00002.safetensors, but it is in/,
    );
  });
});
