// The engine against float64 reference outputs of an independent implementation, for every architecture.
import assert from "node:assert/strict";
import { describe, it, before, after } from "node:test";
import * as tf from "@tensorflow/tfjs-core";
import {
  actName,
  activationAdditionHooks,
  backendInfo,
  directionAblationHooks,
  loadModel,
  unitVector,
  type HookedModel,
} from "../src/index.ts";
import { assertClose, lastLogits, LOGIT_TOLERANCE, maxAbsDiff, modelDir, reference, REFERENCE_ARCHS } from "./helpers/reference.ts";

// The suite runs on the backend ABLITERATE_BACKEND names (npm run test:tensorflow runs it on TensorFlow's): a run
// that fell back to another backend would check the wrong arithmetic.
describe("backend", () => {
  it("is the one ABLITERATE_BACKEND asks for", async () => {
    const info = await backendInfo();
    const asked = process.env.ABLITERATE_BACKEND;
    if (asked) assert.equal(info.name, asked, `ABLITERATE_BACKEND=${asked}, but the suite runs on ${info.name} (${info.device})`);
    assert.equal(info.tfjsBackend, tf.getBackend());
    assert.equal(info.tfjsBackend, { "node-gpu": "tensorflow", node: "tensorflow", wasm: "wasm", cpu: "cpu" }[info.name]);
  });
});

for (const arch of REFERENCE_ARCHS) {
  describe(`${arch} matches the reference implementation`, () => {
    const ref = reference(arch);
    let model: HookedModel;
    before(async () => {
      model = await loadModel(modelDir(arch));
    });
    after(() => model.dispose());

    it("last-position logits of a left-padded batch", async () => {
      assertClose(await lastLogits(model, ref.seqs), ref.last_logits, LOGIT_TOLERANCE, "last_logits");
    });

    it("full-sequence logits of sequence 0 inside the padded batch", async () => {
      const logits = model.forward(ref.seqs);
      const all = (await logits.array()) as number[][][];
      logits.dispose();
      const padding = all[0].length - ref.seqs[0].length;
      assertClose(all[0].slice(padding), ref.seq0_logits, LOGIT_TOLERANCE, "seq0_logits");
    });

    it("a padded sequence gives the same logits as the sequence alone", async () => {
      for (let i = 0; i < ref.seqs.length; i++) {
        const alone = await lastLogits(model, [ref.seqs[i]]);
        assertClose(alone[0], ref.alone_last_logits[i], LOGIT_TOLERANCE, `alone_last_logits[${i}]`);
      }
    });

    it("resid_pre, attn_out, resid_mid, mlp_out and resid_post at the last position", async () => {
      const { logits, cache } = model.runWithCache(ref.seqs, { cachePositions: [-1] });
      logits.dispose();
      for (const [name, expected] of Object.entries(ref.resid_last)) {
        const act = cache.get(name);
        assert.deepEqual(act.shape, [ref.seqs.length, 1, model.dModel], name);
        assertClose(
          ((await act.array()) as number[][][]).map((r) => r[0]),
          expected,
          LOGIT_TOLERANCE,
          name,
        );
      }
      cache.dispose();
    });

    it("direction-ablation hooks give the reference's ablated logits", async () => {
      const ablation = directionAblationHooks(model, unitVector(ref.direction));
      assertClose(await lastLogits(model, ref.seqs, ablation.fwdHooks), ref.ablated_last_logits, LOGIT_TOLERANCE, "ablated_last_logits");
      ablation.dispose();
    });

    it("activation addition at layer 1 gives the reference's logits", async () => {
      const addition = activationAdditionHooks(model, ref.direction, 1, 1.5);
      assertClose(
        await lastLogits(model, ref.seqs, addition.fwdHooks),
        ref.actadd_l1_last_logits,
        LOGIT_TOLERANCE,
        "actadd_l1_last_logits",
      );
      addition.dispose();
    });

    it("greedy continuation with the KV cache", async () => {
      const { tokens } = await model.generate([ref.seqs[0]], { maxNewTokens: ref.greedy.length, stopTokens: [] });
      let compared = 0;
      for (let i = 0; i < ref.greedy.length; i++) {
        if (ref.greedy_margins[i] < 1e-3) break; // a near-tie may go either way; later steps then differ
        assert.equal(tokens[0][i], ref.greedy[i], `greedy token ${i}`);
        compared++;
      }
      assert.ok(compared > 0, "the first greedy step is a near-tie: nothing was compared");
    });

    it("the KV cache gives the logits of a full recomputation", async () => {
      // Generate on the padded batch, then recompute each sequence + its tokens from scratch.
      const { tokens } = await model.generate(ref.seqs, { maxNewTokens: 4, stopTokens: [] });
      const extended = ref.seqs.map((s, i) => [...s, ...tokens[i].slice(0, 3)]);
      const cachedStep = await model.generate(extended, { maxNewTokens: 1, stopTokens: [] });
      assert.deepEqual(
        cachedStep.tokens.map((t) => t[0]),
        tokens.map((t) => t[3]),
      );
    });

    for (const variant of ["bf16", "f16"] as const) {
      it(`loads ${variant} weights`, async () => {
        const m = await loadModel(modelDir(arch, variant));
        assertClose(
          await lastLogits(m, ref.seqs),
          variant === "bf16" ? ref.bf16_last_logits : ref.f16_last_logits,
          LOGIT_TOLERANCE,
          `${variant}_last_logits`,
        );
        m.dispose();
      });
    }

    if (ref.long_seq) {
      it("longrope: a sequence past original_max_position_embeddings switches the whole batch to the long factors", async () => {
        assertClose(await lastLogits(model, [ref.long_seq!]), ref.long_last_logits!, LOGIT_TOLERANCE, "long_last_logits");
        assertClose(
          await lastLogits(model, [ref.long_seq!, ref.seqs[1]]),
          ref.long_batch_last_logits!,
          LOGIT_TOLERANCE,
          "long_batch_last_logits",
        );
        // The short factors give visibly different logits: the switch is what the test sees.
        assert.ok(maxAbsDiff(ref.long_last_logits!, ref.long_last_logits_short_factor!) > 100 * LOGIT_TOLERANCE);
      });
    }

    it("loads a sharded checkpoint", async () => {
      const m = await loadModel(modelDir(arch, "sharded"));
      assertClose(await lastLogits(m, ref.seqs), ref.last_logits, LOGIT_TOLERANCE, "sharded last_logits");
      m.dispose();
    });
  });
}

describe("HookedModel", () => {
  let model: HookedModel;
  const ref = reference("llama");
  before(async () => {
    model = await loadModel(modelDir("llama"));
  });
  after(() => model.dispose());

  it("releases every tensor it creates in forward, runWithHooks and generate", async () => {
    const ablation = directionAblationHooks(model, unitVector(ref.direction));
    // warm up once: backends may allocate lazily on the first call
    model.forward(ref.seqs).dispose();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      model.forward(ref.seqs).dispose();
      model.runWithHooks(ref.seqs, { fwdHooks: ablation.fwdHooks }).dispose();
      const { logits, cache } = model.runWithCache(ref.seqs, { namesFilter: (n) => n.endsWith("resid_pre"), cachePositions: [-1] });
      logits.dispose();
      cache.dispose();
      await model.generate(ref.seqs, { maxNewTokens: 3, fwdHooks: ablation.fwdHooks });
    }
    assert.equal(tf.memory().numTensors, before);
    ablation.dispose();
  });

  it("takes a padded rectangle with an attentionMask option, as TransformerLens does", async () => {
    const length = Math.max(...ref.seqs.map((s) => s.length));
    const inputIds = ref.seqs.map((s) => [...new Array(length - s.length).fill(0), ...s]);
    const attentionMask = ref.seqs.map((s) => [...new Array(length - s.length).fill(0), ...new Array(s.length).fill(1)]);
    const a = model.forward(inputIds, { attentionMask, logits: "last" });
    const b = model.forward(ref.seqs, { logits: "last" });
    assert.deepEqual(await a.data(), await b.data());
    a.dispose();
    b.dispose();
  });

  it("a hook's replacement changes what flows on", async () => {
    const zeroed = model.runWithHooks(ref.seqs, { logits: "last", fwdHooks: [[actName("normalized"), (x) => tf.zerosLike(x)]] });
    const values = await zeroed.data();
    zeroed.dispose();
    assert.ok(
      values.every((v) => v === 0),
      "zeroing the final normalised stream must zero the logits",
    );
  });

  it("runWithCache keeps only the requested hook points and positions", () => {
    const { logits, cache } = model.runWithCache(ref.seqs, {
      namesFilter: [actName("resid_post", 2), actName("embed")],
      cachePositions: [-2, -1],
    });
    assert.deepEqual(cache.names.sort(), ["blocks.2.hook_resid_post", "hook_embed"]);
    assert.deepEqual(cache.get("hook_embed").shape, [3, 2, 64]);
    assert.deepEqual(logits.shape, [3, 12, 300]);
    assert.throws(() => cache.get("blocks.0.hook_resid_pre"), /holds no activation "blocks.0.hook_resid_pre"/);
    logits.dispose();
    cache.dispose();
  });

  it("rejects unknown hook names, bad shapes from hooks, bad positions and out-of-vocabulary ids", () => {
    assert.throws(
      () => model.runWithHooks(ref.seqs, { fwdHooks: [["blocks.0.hook_resid_pr", (x) => x]] }),
      /unknown hook point "blocks.0.hook_resid_pr"/,
    );
    assert.throws(
      () => model.runWithHooks(ref.seqs, { fwdHooks: [[actName("resid_pre", 9), (x) => x]] }),
      /unknown hook point "blocks.9.hook_resid_pre"/,
    );
    assert.throws(
      () => model.runWithHooks(ref.seqs, { fwdHooks: [[actName("resid_pre", 0), (x) => tf.slice(x, 0, 1)]] }),
      /hook on blocks.0.hook_resid_pre returned shape \[1,12,64\], expected \[3,12,64\]/,
    );
    assert.throws(() => model.runWithCache(ref.seqs, { cachePositions: [12] }), /cache position 12 is outside the sequence of length 12/);
    assert.throws(() => model.forward([[1, 300]]), /token id 300 is outside the vocabulary \[0, 300\)/);
    assert.throws(() => model.forward({ inputIds: [[1, 2]], attentionMask: [[1]] }), /attentionMask must have the shape of inputIds/);
    assert.throws(
      () =>
        model.forward(
          [
            [1, 2],
            [3, 4],
          ],
          { attentionMask: [[1, 1]] },
        ),
      /attentionMask must have the shape of inputIds \[2, 2\]/,
    );
    assert.throws(
      () => model.forward({ inputIds: [[1, 2]], attentionMask: [[1, 1]] }, { attentionMask: [[1, 1]] }),
      /attentionMask is given twice/,
    );
  });

  it("is differentiable: tfjs gradients match finite differences", async () => {
    // Weights held outside the heap (the native BLAS path's default) are frozen: load them as tensors here.
    const tensorModel = model.weightPlan.layout === "native" ? await loadModel(modelDir("llama"), { layout: "transposed" }) : model;
    try {
      await gradientsMatchFiniteDifferences(tensorModel);
    } finally {
      if (tensorModel !== model) tensorModel.dispose();
    }
  });

  it("with the weights outside the heap, computes what tensors in the heap compute, gradients included", async () => {
    if ((await backendInfo()).blas === undefined) {
      // Without a BLAS library the layout is refused, by name.
      await assert.rejects(
        loadModel(modelDir("llama"), { layout: "native" }),
        /the layout option "native" needs the native BLAS path on the wasm backend/,
      );
      return;
    }
    const native = await loadModel(modelDir("llama"), { layout: "native" });
    const heap = await loadModel(modelDir("llama"), { layout: "transposed" });
    try {
      assert.equal(native.weightPlan.layout, "native");
      assert.equal(Object.keys(native.params.transposed).length, 0, "no linear weight in the heap");
      assert.equal(native.params.stored["model.embed_tokens.weight"], undefined, "the embedding is outside the heap");
      assert.equal(native.parameterCount, heap.parameterCount);
      assertClose(await lastLogits(native, ref.seqs), ref.last_logits, LOGIT_TOLERANCE, "last_logits, native layout");
      // The gradient of a loss on the logits with respect to the residual stream at layer 0 flows back through
      // every native product (the unembedding, o_proj, down_proj, the MLP and attention inputs).
      const gradient = (m: HookedModel) => {
        const delta = tf.variable(
          tf.zeros([ref.seqs.length, Math.max(...ref.seqs.map((q) => q.length)), m.dModel]),
          true,
          `native_grad_${m.weightPlan.layout}`,
        );
        try {
          const loss = () =>
            tf.tidy(
              () =>
                tf.mean(
                  tf.square(m.runWithHooks(ref.seqs, { fwdHooks: [[actName("resid_pre", 0), (x) => tf.add(x, delta)]] })),
                ) as tf.Scalar,
            );
          const { grads, value } = tf.variableGrads(loss, [delta]);
          value.dispose();
          const out = grads[delta.name].dataSync().slice();
          tf.dispose(Object.values(grads));
          return out;
        } finally {
          delta.dispose();
        }
      };
      const [g, want] = [gradient(native), gradient(heap)];
      const scale = Math.max(...Array.from(want, Math.abs));
      assert.ok(scale > 0, "the gradient is not zero");
      assert.ok(maxAbsDiff(g, want) <= 1e-4 * scale, `gradients differ by ${maxAbsDiff(g, want)} (largest ${scale})`);
    } finally {
      native.dispose();
      heap.dispose();
    }
  });
});

async function gradientsMatchFiniteDifferences(model: HookedModel): Promise<void> {
  const ref = reference("llama");
  {
    const names = [
      "model.layers.0.self_attn.q_proj.weight",
      "model.layers.1.mlp.down_proj.weight",
      "model.norm.weight",
      "model.embed_tokens.weight",
    ];
    const holder = (n: string): Record<string, tf.Tensor> => (n in model.params.transposed ? model.params.transposed : model.params.stored);
    const original = Object.fromEntries(names.map((n) => [n, holder(n)[n]]));
    const loss = () => tf.tidy(() => tf.mean(tf.square(model.forward(ref.seqs, { logits: "last" }))) as tf.Scalar);
    const variables = names.map((n) => tf.variable(original[n], true, `grad_test_${n}`));
    try {
      names.forEach((n, i) => (holder(n)[n] = variables[i]));
      const { grads, value } = tf.variableGrads(loss, variables);
      value.dispose();
      for (const [i, n] of names.entries()) {
        const g = grads[variables[i].name];
        assert.ok(g, `no gradient for ${n}`);
        const gv = await g.data();
        // Central difference at the element with the largest gradient.
        let k = 0;
        for (let j = 1; j < gv.length; j++) if (Math.abs(gv[j]) > Math.abs(gv[k])) k = j;
        const eps = 1e-2;
        const base = await original[n].data();
        const at = (delta: number) => {
          const changed = Float32Array.from(base);
          changed[k] += delta;
          const t = tf.tensor(changed, original[n].shape);
          holder(n)[n] = t;
          const v = loss();
          const out = v.dataSync()[0];
          v.dispose();
          t.dispose();
          return out;
        };
        const numeric = (at(eps) - at(-eps)) / (2 * eps);
        holder(n)[n] = variables[i];
        assert.ok(
          Math.abs(numeric - gv[k]) <= 2e-2 * Math.abs(gv[k]) + 1e-4,
          `${n}[${k}]: gradient ${gv[k]}, finite difference ${numeric}`,
        );
      }
      tf.dispose(Object.values(grads));
    } finally {
      for (const n of names) holder(n)[n] = original[n];
      variables.forEach((v) => v.dispose());
    }
  }
}

describe("sampling", () => {
  it("is reproducible with a seed, varies across seeds, and topK 1 is greedy", async () => {
    const model = await loadModel(modelDir("llama"));
    const ref = reference("llama");
    const sample = async (options: Parameters<HookedModel["generate"]>[1]) =>
      (await model.generate([ref.seqs[0]], { maxNewTokens: 12, stopTokens: [], ...options })).tokens[0];
    const a = await sample({ temperature: 1.5, seed: 7 });
    assert.deepEqual(await sample({ temperature: 1.5, seed: 7 }), a);
    const others = await Promise.all([1, 2, 3].map((seed) => sample({ temperature: 1.5, seed })));
    assert.ok(
      others.some((o) => o.join() !== a.join()),
      "different seeds gave the same 12 tokens four times",
    );
    assert.deepEqual(await sample({ temperature: 1.5, topK: 1, seed: 3 }), await sample({}));
    assert.deepEqual(await sample({ temperature: 1, topP: 1e-9, seed: 5 }), await sample({}));
    model.dispose();
  });
});
