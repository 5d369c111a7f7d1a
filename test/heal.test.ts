// Healing (stage 8): the DPO loss, the answers' log-probabilities and the LoRA gradients against float64
// values computed independently (test/fixtures/dpo/), gradients against finite differences, the LoRA merge
// and export, the trainer's schedule and repeatability, the preference data loaders, and the demo healed.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as tf from "@tensorflow/tfjs-core";
import { parquetWriteBuffer } from "hyparquet-writer";
import {
  answerLogProbs,
  axolotlConfig,
  epochMeans,
  trainingSummary,
  DEMO_MODEL_DIR,
  dpoLoss,
  dpoTerms,
  exportAbliterated,
  learningRateAt,
  loadModel,
  loadPreferences,
  LoraAdapters,
  pairLogProbs,
  preferenceFromRow,
  runHealing,
  runPipeline,
  saveChatmlIntel,
  tokenizePreferences,
  trainDpo,
  unitVector,
  type HookedModel,
  type PreferencePair,
} from "../src/index.ts";
import { orthogonalizeModel } from "../src/pipeline/orthogonalize.ts";
import { FIXTURES, modelDir, reference } from "./helpers/reference.ts";

interface PairValues {
  policy_chosen_logp: number;
  policy_rejected_logp: number;
  reference_chosen_logp: number;
  reference_rejected_logp: number;
  loss: number;
  reward_chosen: number;
  reward_rejected: number;
}
const fixture = JSON.parse(await readFile(join(FIXTURES, "dpo", "reference.json"), "utf8")) as {
  beta: number;
  pairs: PreferencePair[];
  without_lora: { pairs: PairValues[]; mean_loss: number };
  lora: {
    target: string;
    rank: number;
    alpha: number;
    scaling: number;
    A: number[][];
    B: number[][];
    pairs: PairValues[];
    mean_loss: number;
    grad_A: number[][];
    grad_B: number[][];
  };
};

let work: string;
let policy: HookedModel;
let frozen: HookedModel;
before(async () => {
  work = await mkdtemp(join(tmpdir(), "abliterate-heal-"));
  policy = await loadModel(modelDir("llama"));
  frozen = policy.clone();
  orthogonalizeModel(frozen, unitVector(reference("llama").direction));
});
after(async () => {
  policy.dispose();
  frozen.dispose();
  await rm(work, { recursive: true, force: true });
});

/** The fixture's LoRA on the policy, attached inside `fn` (so gradients reach A and B). */
function withFixtureLora<T>(fn: (lora: LoraAdapters) => T): T {
  const lora = new LoraAdapters(policy, { keys: [fixture.lora.target], rank: fixture.lora.rank, alpha: fixture.lora.alpha });
  lora.assign(fixture.lora.target, tf.tensor2d(fixture.lora.A), tf.tensor2d(fixture.lora.B));
  try {
    return fn(lora);
  } finally {
    lora.dispose();
  }
}

/** Mean DPO loss of the fixture's pairs for the policy as it is now (adapters attached or not). */
function meanLoss(ref: { chosen: ArrayLike<number>; rejected: ArrayLike<number> }, attach?: () => void): tf.Scalar {
  return tf.tidy(() => {
    attach?.();
    const items = [
      ...fixture.pairs.map((p) => ({ prompt: p.prompt, answer: p.chosen })),
      ...fixture.pairs.map((p) => ({ prompt: p.prompt, answer: p.rejected })),
    ];
    const [chosen, rejected] = tf.split(answerLogProbs(policy, items), 2) as tf.Tensor1D[];
    return tf.mean(dpoTerms(chosen, rejected, ref.chosen, ref.rejected, fixture.beta).losses) as tf.Scalar;
  });
}

describe("DPO against the float64 reference (llama fixture)", () => {
  it("answer log-probabilities of policy and frozen reference, per-pair losses and rewards, without LoRA", () => {
    const [p, r] = [pairLogProbs(policy, fixture.pairs), pairLogProbs(frozen, fixture.pairs)];
    fixture.without_lora.pairs.forEach((want, i) => {
      for (const [got, expected, what] of [
        [p.chosen[i], want.policy_chosen_logp, "policy chosen"],
        [p.rejected[i], want.policy_rejected_logp, "policy rejected"],
        [r.chosen[i], want.reference_chosen_logp, "reference chosen"],
        [r.rejected[i], want.reference_rejected_logp, "reference rejected"],
      ] as const) {
        assert.ok(Math.abs(got - expected) < 1e-4, `pair ${i} ${what}: ${got} against ${expected}`);
      }
      // The formula on the reference's own numbers, in float64.
      assert.ok(
        Math.abs(
          dpoLoss(
            want.policy_chosen_logp,
            want.policy_rejected_logp,
            want.reference_chosen_logp,
            want.reference_rejected_logp,
            fixture.beta,
          ) - want.loss,
        ) < 1e-12,
      );
    });
    const terms = dpoTerms(
      tf.tensor1d(Float32Array.from(p.chosen)),
      tf.tensor1d(Float32Array.from(p.rejected)),
      r.chosen,
      r.rejected,
      fixture.beta,
    );
    const [losses, rc, rr] = [terms.losses.arraySync(), terms.rewardChosen.arraySync(), terms.rewardRejected.arraySync()];
    tf.dispose([terms.losses, terms.rewardChosen, terms.rewardRejected]);
    fixture.without_lora.pairs.forEach((want, i) => {
      assert.ok(Math.abs(losses[i] - want.loss) < 1e-5, `loss ${i}`);
      assert.ok(Math.abs(rc[i] - want.reward_chosen) < 1e-5 && Math.abs(rr[i] - want.reward_rejected) < 1e-5, `rewards ${i}`);
    });
    const mean = losses.reduce((a, b) => a + b) / losses.length;
    assert.ok(Math.abs(mean - fixture.without_lora.mean_loss) < 1e-5);
  });

  it("with the fixture's LoRA delta on o_proj of layer 1: log-probabilities, loss, and the gradients of A and B", () => {
    const ref = pairLogProbs(frozen, fixture.pairs);
    withFixtureLora((lora) => {
      lora.attach();
      const p = pairLogProbs(policy, fixture.pairs);
      lora.detach();
      fixture.lora.pairs.forEach((want, i) => {
        assert.ok(
          Math.abs(p.chosen[i] - want.policy_chosen_logp) < 1e-4 && Math.abs(p.rejected[i] - want.policy_rejected_logp) < 1e-4,
          `pair ${i}`,
        );
      });
      const { value, grads } = tf.variableGrads(() => meanLoss(ref, () => lora.attach()), lora.variables);
      lora.detach();
      assert.ok(Math.abs(value.dataSync()[0] - fixture.lora.mean_loss) < 1e-5, `mean loss ${value.dataSync()[0]}`);
      const gap = (got: tf.Tensor, want: number[][]) =>
        Math.max(...(got.arraySync() as number[][]).flatMap((row, i) => row.map((g, j) => Math.abs(g - want[i][j]))));
      // Gradients are about 0.1 in size; float32 leaves about 1e-7.
      assert.ok(gap(grads[lora.a.get(fixture.lora.target)!.name], fixture.lora.grad_A) < 1e-5, "grad_A");
      assert.ok(gap(grads[lora.b.get(fixture.lora.target)!.name], fixture.lora.grad_B) < 1e-5, "grad_B");
      tf.dispose([value, ...Object.values(grads)]);
    });
  });

  it("the gradients agree with finite differences of the loss", () => {
    const ref = pairLogProbs(frozen, fixture.pairs);
    withFixtureLora((lora) => {
      const { grads } = tf.variableGrads(() => meanLoss(ref, () => lora.attach()), lora.variables);
      lora.detach();
      const eps = 1e-2;
      for (const [which, entries] of [
        [
          "a",
          [
            [0, 3],
            [1, 40],
          ],
        ],
        [
          "b",
          [
            [5, 0],
            [63, 1],
          ],
        ],
      ] as const) {
        const variable = (which === "a" ? lora.a : lora.b).get(fixture.lora.target)!;
        const analytic = grads[variable.name].arraySync() as number[][];
        for (const [i, j] of entries) {
          const original = variable.arraySync() as number[][];
          const at = (delta: number) => {
            const changed = original.map((row) => [...row]);
            changed[i][j] += delta;
            variable.assign(tf.tensor2d(changed));
            const loss = meanLoss(ref, () => lora.attach());
            lora.detach();
            const value = loss.dataSync()[0];
            loss.dispose();
            return value;
          };
          const numeric = (at(eps) - at(-eps)) / (2 * eps);
          variable.assign(tf.tensor2d(original));
          assert.ok(Math.abs(numeric - analytic[i][j]) < 2e-3, `${which}[${i}][${j}]: numeric ${numeric}, analytic ${analytic[i][j]}`);
        }
      }
      tf.dispose(Object.values(grads));
    });
  });
});

describe("LoRA adapters", () => {
  it("start as the model itself (B = 0); merged into an export, the reloaded model computes what the adapters do", async () => {
    const seqs = reference("llama").seqs;
    const plain = policy.forward(seqs, { logits: "last" });
    const lora = new LoraAdapters(policy, { rank: 4, alpha: 8, seed: 3 });
    try {
      assert.equal(lora.keys.length, 3 * 7);
      lora.attach();
      const start = policy.forward(seqs, { logits: "last" });
      assert.ok(tf.max(tf.abs(tf.sub(start, plain))).dataSync()[0] === 0, "B = 0 changes nothing");
      for (const key of lora.keys.slice(0, 5)) lora.b.get(key)!.assign(tf.randomNormal(lora.b.get(key)!.shape, 0, 0.05, "float32", 7));
      lora.attach(); // attach reads the adapters' current values
      const adapted = policy.forward(seqs, { logits: "last" });
      lora.detach();
      assert.ok(tf.max(tf.abs(tf.sub(adapted, plain))).dataSync()[0] > 1e-3, "the adapters change the logits");
      const out = join(work, "merged");
      const result = await exportAbliterated(modelDir("llama"), out, undefined, { deltas: lora.deltas() });
      assert.equal(result.edited.length, 21);
      const merged = await loadModel(out);
      const reloaded = merged.forward(seqs, { logits: "last" });
      assert.ok(tf.max(tf.abs(tf.sub(reloaded, adapted))).dataSync()[0] < 1e-4);
      merged.dispose();
      tf.dispose([plain, start, adapted, reloaded]);
    } finally {
      lora.dispose();
    }
  });

  it("bad options and targets are named", async () => {
    assert.throws(() => new LoraAdapters(policy, { rank: 0 }), /LoRA rank must be a positive integer, got 0/);
    assert.throws(() => new LoraAdapters(policy, { dropout: 1 }), /LoRA dropout must be in \[0, 1\), got 1/);
    assert.throws(() => new LoraAdapters(policy, { keys: ["model.norm.weight"] }), /LoRA target model.norm.weight is not a linear weight/);
    assert.throws(
      () => new LoraAdapters(policy, { modules: ["nothing"] }),
      /no linear weight of the model matches the LoRA modules nothing/,
    );
    await assert.rejects(
      exportAbliterated(modelDir("llama"), join(work, "bad-delta"), undefined, {
        deltas: new Map([["model.layers.0.mlp.down_proj.weight", new Float32Array(3)]]),
      }),
      /a delta of 3 values for shape \[64, 160\]/,
    );
  });
});

describe("the trainer", () => {
  it("learning rate: linear warmup to the peak, then cosine decay to 0", () => {
    assert.equal(learningRateAt(0, 10, 1, 1), 0.5);
    assert.equal(learningRateAt(1, 10, 1, 1), 1);
    assert.ok(Math.abs(learningRateAt(10, 10, 1, 1)) < 1e-12);
    assert.ok(learningRateAt(5, 10, 1, 1) < 1 && learningRateAt(5, 10, 1, 1) > learningRateAt(8, 10, 1, 1));
  });

  it("stops at the first non-finite loss or gradient, naming the step, before it reaches the weights (#23 item 1)", async () => {
    await assert.rejects(
      trainDpo(policy, fixture.pairs, { rank: 2, alpha: 4, learningRate: Infinity, epochs: 3, batchSize: 3, seed: 5 }),
      /DPO step 2 of 3: the loss is NaN.*training stopped before it reached the weights/,
    );
    // An infinite alpha is refused before training (it would scale every update to infinity).
    await assert.rejects(
      trainDpo(policy, fixture.pairs, { rank: 2, alpha: Infinity, learningRate: 1e-3, epochs: 1, batchSize: 3, seed: 5 }),
      /LoRA alpha must be a positive finite number, got Infinity/,
    );
  });

  it("is repeatable from a seed, accumulates gradients, and lowers the loss", async () => {
    const run = () =>
      trainDpo(policy, fixture.pairs, {
        rank: 2,
        alpha: 4,
        learningRate: 1e-2,
        epochs: 4,
        batchSize: 1,
        gradientAccumulation: 3,
        seed: 5,
        dropout: 0.1,
      });
    const [a, b] = [await run(), await run()];
    try {
      assert.equal(a.history.length, 4); // 3 pairs, 1 per pass, 3 passes per step: one step per epoch
      assert.deepEqual(a.history, b.history);
      const [da, db] = [a.adapters.deltas(), b.adapters.deltas()];
      for (const [key, delta] of da) assert.deepEqual(delta, db.get(key));
      assert.ok(a.history[3].loss < a.history[0].loss, JSON.stringify(a.history.map((h) => h.loss)));
      assert.ok(Math.abs(a.history[0].loss - Math.log(2)) < 1e-6, "the first step starts from the reference: loss ln 2");
      // #27: at the first step the policy is the reference; float32 rounding of equal rewards is no win.
      assert.equal(a.history[0].rewardAccuracy, 0);
      assert.deepEqual(
        a.history.map((h) => h.epoch),
        [1, 2, 3, 4],
      );
      assert.deepEqual(
        epochMeans(a.history).map((m) => m.loss),
        a.history.map((h) => h.loss),
        "one step per epoch: each epoch's mean is its step",
      );
    } finally {
      a.adapters.dispose();
      b.adapters.dispose();
    }
    await assert.rejects(trainDpo(policy, []), /no preference pairs/);
    await assert.rejects(trainDpo(policy, fixture.pairs, { batchSize: 0 }), /batchSize must be a positive integer, got 0/);
  });
});

describe("preference data", () => {
  it("strings, and chat-message lists as in mlabonne/orpo-dpo-mix-40k, from .jsonl and .parquet; bad rows are named", async () => {
    const messages = (answer: string) => [
      { role: "user", content: "Name a colour." },
      { role: "assistant", content: answer },
    ];
    const jsonl = join(work, "mix.jsonl");
    await writeFile(
      jsonl,
      [
        JSON.stringify({
          source: "x",
          prompt: "Name a colour.",
          chosen: messages("Blue."),
          rejected: messages("Colour colour."),
          question: "Name a colour.",
        }),
        JSON.stringify({ prompt: "Say hi.", chosen: "Hi!", rejected: "No." }),
      ].join("\n"),
    );
    const rows = await loadPreferences(jsonl);
    assert.deepEqual(rows[0], { messages: [{ role: "user", content: "Name a colour." }], chosen: "Blue.", rejected: "Colour colour." });
    assert.deepEqual(rows[1], { messages: [{ role: "user", content: "Say hi." }], chosen: "Hi!", rejected: "No." });
    const parquet = join(work, "pairs.parquet");
    await writeFile(
      parquet,
      Buffer.from(
        parquetWriteBuffer({
          columnData: [
            { name: "prompt", data: ["Say hi."], type: "STRING" },
            { name: "chosen", data: ["Hi!"], type: "STRING" },
            { name: "rejected", data: ["No."], type: "STRING" },
          ],
        }),
      ),
    );
    assert.deepEqual(await loadPreferences(parquet), [rows[1]]);
    assert.throws(
      () =>
        preferenceFromRow(
          {
            chosen: messages("a"),
            rejected: [
              { role: "user", content: "Other." },
              { role: "assistant", content: "b" },
            ],
          },
          "f: row 3",
        ),
      /f: row 3: chosen and rejected conversations differ before their last turn/,
    );
    assert.throws(
      () => preferenceFromRow({ chosen: "a", rejected: ["b"] }, "f: row 1"),
      /f: row 1: chosen and rejected must both be strings or both be lists/,
    );
    assert.throws(
      () => preferenceFromRow({ prompt: 3, chosen: "a", rejected: "b" }, "f: row 2"),
      /f: row 2: prompt must be a string or a list/,
    );
    await assert.rejects(loadPreferences(join(work, "missing.jsonl")), /missing.jsonl: cannot read preference pairs \(ENOENT\)/);
  });

  it("rendered with the chat template: the prompt as for generation, each answer with the template's end-of-turn marker", async () => {
    const demo = await loadModel(DEMO_MODEL_DIR);
    try {
      const [pair] = tokenizePreferences(demo.tokenizer, [
        { messages: [{ role: "user", content: "Say hi." }], chosen: "Hi!", rejected: "No." },
      ]);
      assert.deepEqual(pair.prompt, demo.tokenizer.encode(demo.tokenizer.formatInstruction("Say hi.")));
      assert.equal(demo.tokenizer.decode(pair.chosen, { skipSpecialTokens: false }), "Hi!<|end|>\n");
      assert.equal(demo.tokenizer.decode(pair.rejected, { skipSpecialTokens: false }), "No.<|end|>\n");
    } finally {
      demo.dispose();
    }
  });

  it("the blog's Axolotl recipe, and the pairs in chatml.intel form", async () => {
    const yaml = axolotlConfig({ baseModel: "/models/abliterated", padToken: "<|end|>" });
    for (const line of [
      "path: mlabonne/orpo-dpo-mix-40k-flat",
      "weight_decay: 0.0",
      "flash_attention: true",
      "deepspeed: deepspeed_configs/zero2.json",
      'special_tokens:\n  pad_token: "<|end|>"',
      "# The chat format: the dataset type chatml.intel reads flat rows",
      "base_model: /models/abliterated",
      "rl: dpo",
      "adapter: qlora",
      "lora_r: 64",
      "lora_alpha: 32",
      "lora_dropout: 0.05",
      "lora_target_linear: true",
      "learning_rate: 5e-6",
      "lr_scheduler: cosine",
      "num_epochs: 1",
      "path: mlabonne/orpo-dpo-mix-40k",
      "type: chatml.intel",
    ])
      assert.ok(yaml.includes(line), line);
    const file = join(work, "intel.jsonl");
    await saveChatmlIntel(file, [
      {
        messages: [
          { role: "system", content: "Be brief." },
          { role: "user", content: "Say hi." },
        ],
        chosen: "Hi!",
        rejected: "No.",
      },
    ]);
    assert.deepEqual(JSON.parse(await readFile(file, "utf8")), {
      system: "Be brief.",
      question: "Say hi.",
      chosen: "Hi!",
      rejected: "No.",
    });
    await assert.rejects(
      saveChatmlIntel(file, [
        {
          messages: [
            { role: "user", content: "a" },
            { role: "assistant", content: "b" },
            { role: "user", content: "c" },
          ],
          chosen: "d",
          rejected: "e",
        },
      ]),
      /pair 1: chatml.intel holds one user question/,
    );
  });
});

describe("the demo model healed (npm run heal's settings)", () => {
  it("harmful refusal stays at most 10%, the harmless KL to the original goes down, answers stay", async () => {
    const run = await runPipeline({ outDir: join(work, "run"), nTest: 64 });
    const report = await runHealing({
      model: run.exportDir,
      original: DEMO_MODEL_DIR,
      out: join(work, "heal"),
      rank: 8,
      alpha: 16,
      dropout: 0,
      learningRate: 6e-4,
      epochs: 3,
      nInstructions: 512,
      batchSize: 8,
    });
    assert.ok(report.pairs.n > 50, `${report.pairs.n} pairs`);
    assert.ok(report.after.harmfulRefusal <= 0.1, `harmful refusal after healing ${report.after.harmfulRefusal}`);
    assert.ok(report.after.harmlessKl < report.before.harmlessKl, `KL ${report.before.harmlessKl} -> ${report.after.harmlessKl}`);
    assert.ok(report.after.harmlessUnchanged.exact >= 0.95, `unchanged ${report.after.harmlessUnchanged.exact}`);
    assert.ok(report.after.coherentCompliance!.firstTokens >= 0.8, `coherent compliance ${report.after.coherentCompliance!.firstTokens}`);
    assert.ok(report.exportCheck < 1e-4, `export ${report.exportCheck}`);
    assert.ok(report.history[report.history.length - 1].loss < report.history[0].loss);
    const html = await readFile(join(work, "heal", "heal.html"), "utf8");
    assert.match(html, /Healing: DPO loss by step/);
    assert.match(await readFile(join(work, "heal", "axolotl.yaml"), "utf8"), /pairs\.chatml-intel\.jsonl/);
  });
});

describe("heal's options are checked before any model loads (#23 item 11)", () => {
  const out = () => join(work, "heal-options");
  it("a LoRA rank past a weight's smaller side, dropout 1, a non-positive learning rate or beta", async () => {
    const base = { model: modelDir("llama"), original: modelDir("llama"), out: out() };
    await assert.rejects(
      runHealing({ ...base, rank: 4096 }),
      /LoRA rank 4096 is larger than model\.layers\.0\.\S+'s smaller side \(\d+ of \[\d+, \d+\]\): choose at most \d+/,
    );
    await assert.rejects(runHealing({ ...base, dropout: 1 }), /LoRA dropout must be in \[0, 1\), got 1/);
    await assert.rejects(runHealing({ ...base, learningRate: -1 }), /DPO learning rate must be a positive finite number, got -1/);
    await assert.rejects(runHealing({ ...base, beta: 0 }), /DPO beta must be a positive finite number, got 0/);
  });
  it("a pair whose chosen and rejected answers are the same is named", async () => {
    const pairs = join(work, "same.jsonl");
    await writeFile(pairs, JSON.stringify({ prompt: "Hi", chosen: "Hello.", rejected: "Hello." }) + "\n");
    await assert.rejects(
      runHealing({ model: modelDir("llama"), original: modelDir("llama"), out: out(), pairs }),
      /same\.jsonl: row 1: chosen and rejected are the same answer; a pair must differ/,
    );
  });
});

describe("what a training run reports (#27)", () => {
  it("each epoch's mean loss and reward accuracy, not the last minibatch's", () => {
    const step = (n: number, epoch: number, loss: number, rewardAccuracy: number) => ({
      step: n,
      steps: 4,
      epoch,
      loss,
      rewardAccuracy,
      margin: 0,
      learningRate: 1e-3,
    });
    const history = [step(1, 1, 0.7, 0), step(2, 1, 0.6, 0.5), step(3, 2, 0.5, 1), step(4, 2, 0.3, 1)];
    assert.deepEqual(
      epochMeans(history).map((m) => [m.epoch, Number(m.loss.toFixed(6)), m.rewardAccuracy]),
      [
        [1, 0.65, 0.25],
        [2, 0.4, 1],
      ],
    );
    assert.equal(
      trainingSummary(history),
      "4 DPO steps, 2 epochs: mean loss by epoch 0.6500, 0.4000; mean reward accuracy by epoch 25.0%, 100.0%",
    );
  });
});
