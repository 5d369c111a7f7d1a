// Seeded mutations of a small checkpoint's header and data: each must load with exactly the bytes the file
// holds, or fail with an error of the project's own kinds that names the file; never a raw error, a hang,
// or data read from the wrong place.
import assert from "node:assert/strict";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it, before, after } from "node:test";
import { loadModel, makeRng, type HookedModel } from "../src/index.ts";
import { modelDir } from "./helpers/reference.ts";

const MUTATIONS = 300;
const KNOWN_ERRORS = new Set(["SafetensorsError", "CheckpointError", "ConfigError"]);

let work: string;
let original: Buffer;
let headerEnd: number;
let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
before(async () => {
  work = await mkdtemp(join(tmpdir(), "abliterate-fuzz-"));
  original = await readFile(join(modelDir("llama"), "model.safetensors"));
  const n = Number(original.readBigUInt64LE(0));
  headerEnd = 8 + n;
  header = JSON.parse(original.subarray(8, headerEnd).toString("utf8"));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

/** The file with its header replaced by `json` (re-encoded, with the right length). */
function withHeader(json: unknown): Buffer {
  const text = Buffer.from(JSON.stringify(json));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(text.length));
  return Buffer.concat([length, text, original.subarray(headerEnd)]);
}

type Mutation = { name: string; bytes: Buffer; /** Byte of the data region changed, when only data changed. */ dataByte?: number };

function mutate(rng: () => number, i: number): Mutation {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rng() * xs.length)];
  const names = Object.keys(header).filter((k) => k !== "__metadata__");
  const bytes = Buffer.from(original);
  switch (i % 9) {
    case 0: {
      const at = 8 + Math.floor(rng() * (headerEnd - 8));
      bytes[at] ^= 1 << Math.floor(rng() * 8);
      return { name: `flip header byte ${at}`, bytes };
    }
    case 1: {
      const at = headerEnd + Math.floor(rng() * (bytes.length - headerEnd));
      bytes[at] ^= 1 << Math.floor(rng() * 7); // not the sign bit of a float's top byte alone: any bit but 7
      return { name: `flip data byte ${at}`, bytes, dataByte: at - headerEnd };
    }
    case 2: {
      const delta = pick([-9, -1, 1, 7, 1000, -1000]);
      bytes.writeBigUInt64LE(BigInt(Math.max(0, headerEnd - 8 + delta)), 0);
      return { name: `header length ${delta > 0 ? "+" : ""}${delta}`, bytes };
    }
    case 3: {
      const cut = Math.floor(rng() * bytes.length);
      return { name: `truncate to ${cut} bytes`, bytes: bytes.subarray(0, cut) };
    }
    case 4: {
      const name = pick(names);
      const h = structuredClone(header);
      const [b, e] = h[name].data_offsets;
      h[name].data_offsets = pick([
        [b + 4, e + 4],
        [b - 4, e - 4],
        [b, e + 4],
        [0, e - b],
        [e, b],
        [b, e * 1000],
      ]) as [number, number];
      return { name: `offsets of ${name}`, bytes: withHeader(h) };
    }
    case 5: {
      const name = pick(names);
      const h = structuredClone(header);
      const shape = h[name].shape;
      h[name].shape = pick([[...shape].reverse(), [...shape, 1], shape.slice(1), shape.map((d) => d + 1), [-1, ...shape.slice(1)], [1.5]]);
      return { name: `shape of ${name} ${JSON.stringify(h[name].shape)}`, bytes: withHeader(h) };
    }
    case 6: {
      const name = pick(names);
      const h = structuredClone(header);
      h[name].dtype = pick(["F16", "BF16", "I32", "U8", "F64", "F8_E4M3", "Q4", ""]);
      return { name: `dtype of ${name} ${h[name].dtype}`, bytes: withHeader(h) };
    }
    case 7: {
      const extra = Buffer.alloc(1 + Math.floor(rng() * 64));
      return { name: `${extra.length} trailing bytes`, bytes: Buffer.concat([bytes, extra]) };
    }
    default: {
      const h = structuredClone(header) as Record<string, unknown>;
      const name = pick(names);
      const variant = Math.floor(rng() * 4);
      if (variant === 0) delete h[name];
      else if (variant === 1) h[name] = "not an entry";
      else if (variant === 2) h.__metadata__ = pick([5, [], { format: 5 }, null]);
      else h[`${name}.copy`] = h[name];
      return { name: `entry ${name} variant ${variant}`, bytes: withHeader(h) };
    }
  }
}

/** Every weight the model holds, by key, wherever it is held (tensors in the heap, matrices outside it). */
function heldValues(model: HookedModel): Map<string, Float32Array> {
  const { stored, transposed, native = {} } = model.params;
  return new Map<string, Float32Array>([
    ...[...Object.entries(stored), ...Object.entries(transposed)].map(([k, t]) => [k, (t.dataSync() as Float32Array).slice()] as const),
    ...Object.entries(native).map(([k, m]) => [k, m.values.slice()] as const),
  ]);
}

describe(`safetensors fuzzing: ${MUTATIONS} seeded mutations of a checkpoint`, () => {
  it("each loads exactly what the file holds, or fails with a clear error naming the file", async () => {
    const rng = makeRng(20261129);
    const dir = join(work, "model");
    await cp(modelDir("llama"), dir, { recursive: true });
    const baseline = await loadModel(dir);
    const baseValues = heldValues(baseline);
    baseline.dispose();
    const outcomes = { loaded: 0, refused: 0 };
    for (let i = 0; i < MUTATIONS; i++) {
      const m = mutate(rng, i);
      await writeFile(join(dir, "model.safetensors"), m.bytes);
      let model;
      try {
        model = await loadModel(dir);
      } catch (error) {
        const e = error as Error;
        assert.ok(KNOWN_ERRORS.has(e.name), `${m.name}: a raw ${e.name}: ${e.message}`);
        assert.ok(e.message.includes(dir), `${m.name}: the error does not name the file: ${e.message}`);
        outcomes.refused++;
        continue;
      }
      // It loaded: every tensor must hold the original values, except (for a data byte flip) one element.
      let changed = 0;
      for (const [k, now] of heldValues(model)) {
        const before = baseValues.get(k)!;
        for (let j = 0; j < now.length; j++) if (!Object.is(now[j], before[j])) changed++;
      }
      model.dispose();
      assert.ok(m.dataByte !== undefined ? changed <= 1 : changed === 0, `${m.name}: loaded with ${changed} changed values`);
      outcomes.loaded++;
    }
    assert.ok(
      outcomes.refused > MUTATIONS / 2 && outcomes.loaded > MUTATIONS / 20,
      `${JSON.stringify(outcomes)}: the mutations should exercise both outcomes`,
    );
  });
});
