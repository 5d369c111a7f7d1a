// The edit plan: which tensors an edit changes, against which vector, and whether a tied head is untied,
// decided once for the in-memory edit and both exports.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { openCheckpoint, planCheckpointEdit, unitVector } from "../src/index.ts";
import { modelDir, reference } from "./helpers/reference.ts";

describe("planCheckpointEdit", () => {
  it("a full edit: the embedding and every layer's o_proj and down_proj, against r, at full strength", async () => {
    const checkpoint = await openCheckpoint(modelDir("llama"));
    try {
      const unit = unitVector(reference("llama").direction);
      const plan = await planCheckpointEdit(checkpoint, unit);
      const layers = checkpoint.config.num_hidden_layers;
      const expected = [
        "model.embed_tokens.weight",
        ...Array.from({ length: layers }, (_, l) => [
          `model.layers.${l}.self_attn.o_proj.weight`,
          `model.layers.${l}.mlp.down_proj.weight`,
        ]).flat(),
      ];
      assert.deepEqual([...plan.edits.keys()].sort(), expected.sort());
      for (const edit of plan.edits.values()) {
        assert.equal(edit.scale, 1);
        assert.deepEqual([...edit.vector!], [...unit]);
      }
      assert.equal(plan.edits.get("model.embed_tokens.weight")!.kind, "embedding");
      assert.equal(plan.edits.get("model.layers.0.mlp.down_proj.weight")!.kind, "weight");
      assert.equal(plan.full, true);
      assert.equal(plan.untie, false); // llama's fixture is untied already
    } finally {
      await checkpoint.close();
    }
  });

  it(
    "a partial edit: only the chosen layers, no embedding, the given strength; a tied head is untied but equals the " + "embedding",
    async () => {
      const checkpoint = await openCheckpoint(modelDir("qwen2"));
      try {
        const unit = unitVector(reference("qwen2").direction);
        const plan = await planCheckpointEdit(checkpoint, unit, { layers: [1, 1], skipEmbedding: true, scale: 0.5 });
        assert.deepEqual([...plan.edits.keys()].sort(), ["model.layers.1.mlp.down_proj.weight", "model.layers.1.self_attn.o_proj.weight"]);
        assert.ok([...plan.edits.values()].every((e) => e.scale === 0.5));
        assert.equal(plan.full, false);
        assert.equal(plan.untie, true);
        assert.equal(plan.headDiffers, false);
        assert.equal((await planCheckpointEdit(checkpoint, unit)).headDiffers, true);
        assert.deepEqual(plan.record, {
          edited: [...plan.edits.keys()],
          scale: 0.5,
          layers: [1, 1],
          skipEmbedding: true,
          postNorms: null,
          untied: true,
          normPreserving: false,
          biprojected: false,
        });
      } finally {
        await checkpoint.close();
      }
    },
  );

  it("sandwich-norm models: o_proj and down_proj against u = unit((1 + w_post) r), the embedding against r; naive keeps r", async () => {
    const checkpoint = await openCheckpoint(modelDir("gemma2"));
    try {
      const unit = unitVector(reference("gemma2").direction);
      const plan = await planCheckpointEdit(checkpoint, unit);
      const w = await checkpoint.weights.readFloat32("model.layers.0.post_attention_layernorm.weight");
      const u = Float64Array.from(unit, (r, i) => (1 + w[i]) * r);
      const norm = Math.hypot(...u);
      const vector = plan.edits.get("model.layers.0.self_attn.o_proj.weight")!.vector!;
      vector.forEach((x, i) => assert.ok(Math.abs(x - u[i] / norm) < 1e-15, `u[${i}]`));
      assert.deepEqual([...plan.edits.get("model.embed_tokens.weight")!.vector!], [...unit]);
      const naive = await planCheckpointEdit(checkpoint, unit, { naive: true });
      assert.deepEqual([...naive.edits.get("model.layers.0.self_attn.o_proj.weight")!.vector!], [...unit]);
    } finally {
      await checkpoint.close();
    }
  });

  it(
    "bad input is named: a direction of the wrong width, layers outside the model, a delta of the wrong size or for no " + "tensor",
    async () => {
      const checkpoint = await openCheckpoint(modelDir("llama"));
      try {
        const unit = unitVector(reference("llama").direction);
        await assert.rejects(
          planCheckpointEdit(checkpoint, unitVector([1, 2, 3])),
          /direction has 3 values, but the model's d_model \(hidden_size\) is 64/,
        );
        await assert.rejects(planCheckpointEdit(checkpoint, unit, { layers: [0, 99] }), /layer range \[0, 99\] is not within \[0, \d+\]/);
        await assert.rejects(planCheckpointEdit(checkpoint, unit, { scale: 1.5 }), /scale must be between 0 and 1, got 1.5/);
        const wrongSize = new Map([["model.layers.0.mlp.down_proj.weight", new Float32Array(3)]]);
        await assert.rejects(
          planCheckpointEdit(checkpoint, undefined, {}, wrongSize),
          /model\.layers\.0\.mlp\.down_proj\.weight: a delta of 3 values for shape \[64, 160\]/,
        );
        const noTensor = new Map([["model.layers.9.nope.weight", new Float32Array(3)]]);
        await assert.rejects(
          planCheckpointEdit(checkpoint, undefined, {}, noTensor),
          /no tensor model\.layers\.9\.nope\.weight to add a delta to/,
        );
      } finally {
        await checkpoint.close();
      }
    },
  );
});
