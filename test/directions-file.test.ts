// A directions file whose metadata disagrees with its tensors is refused at load, naming the entry (#23 item 6).
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { checkDirectionsFit, floatTensor, loadDirections, saveDirections, writeSafetensors, type Direction } from "../src/index.ts";

let work: string;
before(async () => {
  work = await mkdtemp(join(tmpdir(), "abliterate-directions-file-"));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A directions file with the given metadata entries and one tensor of `width` values per tensor name. */
async function directionsFile(name: string, entries: object[], tensors: [string, number][]): Promise<string> {
  const path = join(work, name);
  const data = tensors.map(([key, width], i) =>
    floatTensor(
      key,
      Float32Array.from({ length: width }, (_, j) => i + j + 1),
      [width],
    ),
  );
  await writeSafetensors(path, data, { format: "abliterate-directions", directions: JSON.stringify(entries) });
  return path;
}

const entry = (layer: number, key = `blocks.${layer}.hook_resid_pre@-1`) => ({ key, layer, hook: "resid_pre", tokenOffset: -1 });

describe("loadDirections checks the metadata against the tensors", () => {
  it("reads a consistent file", async () => {
    const path = await directionsFile(
      "good.safetensors",
      [entry(2), entry(5)],
      [
        ["blocks.2.hook_resid_pre@-1", 4],
        ["blocks.5.hook_resid_pre@-1", 4],
      ],
    );
    assert.deepEqual(
      (await loadDirections(path)).map((d) => d.layer),
      [2, 5],
    );
  });

  it("an entry whose key names another direction's tensor", async () => {
    const tensors: [string, number][] = [
      ["blocks.2.hook_resid_pre@-1", 4],
      ["blocks.5.hook_resid_pre@-1", 4],
    ];
    const path = await directionsFile("mislabelled.safetensors", [entry(2, "blocks.5.hook_resid_pre@-1")], tensors);
    await assert.rejects(
      loadDirections(path),
      /mislabelled\.safetensors: metadata entry 0 has key blocks\.5\.hook_resid_pre@-1, but its layer 2, hook resid_pre and token/,
    );
  });

  it("a direction listed twice, and directions of different widths", async () => {
    const twice = await directionsFile("twice.safetensors", [entry(2), entry(2)], [["blocks.2.hook_resid_pre@-1", 4]]);
    await assert.rejects(loadDirections(twice), /twice\.safetensors: direction blocks\.2\.hook_resid_pre@-1 appears twice/);
    const widths = await directionsFile(
      "widths.safetensors",
      [entry(1), entry(2)],
      [
        ["blocks.1.hook_resid_pre@-1", 4],
        ["blocks.2.hook_resid_pre@-1", 6],
      ],
    );
    await assert.rejects(
      loadDirections(widths),
      /direction blocks\.2\.hook_resid_pre@-1 has 6 values, but blocks\.1\.hook_resid_pre@-1 has 4/,
    );
  });

  it("checkDirectionsFit: a layer past the model's, a width other than d_model", async () => {
    const path = join(work, "fit.safetensors");
    const direction = (layer: number, width: number): Direction =>
      ({
        layer,
        hook: "resid_pre",
        tokenOffset: -1,
        raw: Float64Array.from({ length: width }, () => 1),
        norm: Math.sqrt(width),
      }) as Direction;
    await saveDirections(path, [direction(1005, 4)]);
    const loaded = await loadDirections(path);
    assert.throws(
      () => checkDirectionsFit(loaded, { nLayers: 6, dModel: 4 }, path),
      /is of layer 1005, but the model has 6 layers \(0-5\)/,
    );
    assert.throws(
      () => checkDirectionsFit(loaded, { nLayers: 2000, dModel: 8 }, path),
      /has 4 values, but the model's d_model \(hidden_size\) is 8/,
    );
    checkDirectionsFit(loaded, { nLayers: 2000, dModel: 4 }, path);
  });
});
