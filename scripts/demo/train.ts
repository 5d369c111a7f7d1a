// Trains the embedded demo model (models/demo) from a fixed seed with the engine's own forward pass
// and tfjs gradients, in two stages like a real chat model:
//   1. instruction tuning: every request gets a compliant answer (harmful ones a content-free placeholder);
//   2. safety tuning of one middle layer's MLP only: harmful requests get refusals, harmless keep their answers.
// Localising safety tuning this way makes refusal mediated by one direction, as the paper finds in
// real chat models. Run: npm run demo:train [-- --out DIR --quick]
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import * as tf from "@tensorflow/tfjs-core";
import { loadModel, refusalRate, generateCompletions, type HookedModel } from "../../src/index.ts";
import { floatTensor, planShards, writeCheckpointWeights } from "../../src/safetensors/write.ts";
import { expectedTensors } from "../../src/models/tensors.ts";
import { architectureFor, parseConfig } from "../../src/config.ts";
import { makeRng } from "../../src/sampling.ts";
import { trainBpe, tokenizerJson } from "./bpe.ts";
import { allExamples, hash, PLACEHOLDER, REFUSAL_PHRASE_PROMPTS, REFUSALS, type Example } from "./instructions.ts";

export const SPECIAL_TOKENS = ["<|pad|>", "<|begin|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"];
export const CHAT_TEMPLATE =
  "{{ bos_token }}{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] | trim + '<|end|>\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}";

export const DEMO_CONFIG = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  hidden_size: 64, // d_model: small enough to train on a laptop CPU in minutes
  intermediate_size: 192,
  num_hidden_layers: 6, // enough layers that where the refusal direction lives is a real question
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 16,
  vocab_size: 640,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  max_position_embeddings: 128,
  tie_word_embeddings: false,
  bos_token_id: 1,
  eos_token_id: 2,
  pad_token_id: 0,
  hidden_act: "silu",
};
/** The layer whose MLP alone is safety-tuned. */
export const SAFETY_LAYER = 2;

const { values: args } = parseArgs({
  options: {
    out: { type: "string", default: join(import.meta.dirname, "..", "..", "models", "demo") },
    seed: { type: "string", default: "1234" },
    "stage1-epochs": { type: "string", default: "12" },
    "stage2-epochs": { type: "string", default: "8" },
    "stage2-lr": { type: "string", default: "1e-2" },
    "stage2-rank": { type: "string", default: "1" },
    "batch-size": { type: "string", default: "32" },
    quick: { type: "boolean", default: false }, // a few steps only: the smoke test
    "stage1-checkpoint": { type: "string" }, // reuse (or save) the instruction-tuned model, to iterate on stage 2
  },
});
const seed = Number(args.seed);
const rng = makeRng(seed);

function shuffled<T>(xs: readonly T[]): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/** Token ids of prompt + answer + <|end|>, and which positions predict an answer token. */
function encodeExample(model: HookedModel, text: string, answer: string): { ids: number[]; lossFrom: number } {
  const prompt = model.tokenizer.encode(model.tokenizer.formatInstruction(text));
  const reply = [...model.tokenizer.encode(answer), DEMO_CONFIG.eos_token_id];
  return { ids: [...prompt, ...reply], lossFrom: prompt.length - 1 };
}

/** Mean cross-entropy of the answer tokens of a left-padded batch. */
function batchLoss(model: HookedModel, batch: { ids: number[]; lossFrom: number }[]): tf.Scalar {
  const length = Math.max(...batch.map((b) => b.ids.length));
  const inputIds: number[][] = [];
  const mask: number[][] = [];
  const targets: number[] = [];
  const weights: number[] = [];
  for (const b of batch) {
    const pad = length - b.ids.length;
    inputIds.push([...new Array(pad).fill(0), ...b.ids]);
    mask.push([...new Array(pad).fill(0), ...new Array(b.ids.length).fill(1)]);
    for (let t = 0; t < length; t++) {
      const i = t - pad; // index in the unpadded sequence
      const predicts = i >= b.lossFrom && i < b.ids.length - 1;
      targets.push(predicts ? b.ids[i + 1] : 0);
      weights.push(predicts ? 1 : 0);
    }
  }
  return tf.tidy(() => {
    const logits = model.forward({ inputIds, attentionMask: mask }); // [batch, pos, vocab]
    const logp = tf.logSoftmax(tf.reshape(logits, [-1, DEMO_CONFIG.vocab_size])); // [batch * pos, vocab]
    const picked = tf.sum(tf.mul(logp, tf.oneHot(tf.tensor1d(targets, "int32"), DEMO_CONFIG.vocab_size)), 1); // [batch * pos]
    const w = tf.tensor1d(weights);
    return tf.div(tf.neg(tf.sum(tf.mul(picked, w))), tf.sum(w)) as tf.Scalar;
  });
}

/** What a training stage updates, and how the model's weights are computed from it. */
interface Trainable {
  variables: tf.Variable[];
  /** Called inside the gradient tape before each forward pass. */
  bind(): void;
  /** Leaves plain tensors in the model when the stage ends. */
  finish(): void;
}

/** The map that holds a weight (linear weights transposed, the rest as stored). */
function holder(model: HookedModel, key: string): Record<string, tf.Tensor> {
  return Object.hasOwn(model.params.transposed, key) ? model.params.transposed : model.params.stored;
}

/** Train these weights as they are. */
function fullWeights(model: HookedModel, keys: string[]): Trainable {
  const variables = keys.map((key) => {
    const held = holder(model, key);
    const v = tf.variable(held[key], true, `full/${key}`);
    held[key].dispose();
    held[key] = v;
    return v;
  });
  return {
    variables,
    bind: () => {},
    finish: () => keys.forEach((key, i) => {
      holder(model, key)[key] = tf.clone(variables[i]);
      variables[i].dispose();
    }),
  };
}

/**
 * A low-rank update W + B A of one weight (held as [in, out]): with rank 1 the layer can add only one
 * new direction to what it writes, which keeps the safety behaviour mediated by a single direction.
 */
function lowRankUpdate(model: HookedModel, key: string, rank: number): Trainable {
  const base = model.params.transposed[key]; // [in, out]
  const [inF, outF] = base.shape;
  const b = tf.variable(tf.tensor2d(Float32Array.from({ length: inF * rank }, () => 0.02 * (2 * rng() - 1) * Math.sqrt(3)), [inF, rank]), true, `lowrank/${key}/B`); // [in, rank]
  const a = tf.variable(tf.zeros([rank, outF]), true, `lowrank/${key}/A`); // [rank, out]; zero, so training starts from the given model
  return {
    variables: [b, a],
    bind: () => {
      model.params.transposed[key] = tf.add(base, tf.matMul(b, a));
    },
    finish: () => {
      model.params.transposed[key] = tf.tidy(() => tf.add(base, tf.matMul(b, a)));
      base.dispose();
      b.dispose();
      a.dispose();
    },
  };
}

async function trainStage(model: HookedModel, name: string, data: { ids: number[]; lossFrom: number }[], trainable: Trainable, epochs: number, learningRate: number, maxSteps = Infinity): Promise<number[]> {
  const optimizer = tf.train.adam(learningRate);
  const batchSize = Number(args["batch-size"]);
  const losses: number[] = [];
  let step = 0;
  const start = performance.now();
  for (let epoch = 0; epoch < epochs && step < maxSteps; epoch++) {
    let sum = 0;
    let count = 0;
    // Batches of similar length waste less compute on padding: sort within chunks of 8 batches, then shuffle the batches.
    const order = shuffled(data);
    const batches: (typeof data)[] = [];
    for (let c = 0; c < order.length; c += 8 * batchSize) {
      const chunk = order.slice(c, c + 8 * batchSize).sort((a, b) => a.ids.length - b.ids.length);
      for (let i = 0; i < chunk.length; i += batchSize) batches.push(chunk.slice(i, i + batchSize));
    }
    for (const batch of shuffled(batches)) {
      if (step++ >= maxSteps) break;
      const loss = optimizer.minimize(() => {
        trainable.bind();
        return batchLoss(model, batch);
      }, true, trainable.variables) as tf.Scalar;
      const value = (await loss.data())[0];
      loss.dispose();
      losses.push(value);
      sum += value;
      count++;
    }
    console.log(`${name} epoch ${epoch + 1}/${epochs}: loss ${(sum / count).toFixed(4)} (${((performance.now() - start) / 1000).toFixed(0)} s)`);
  }
  optimizer.dispose();
  trainable.finish();
  return losses;
}

async function writeCheckpoint(model: HookedModel, dir: string, tokenizer: Record<string, unknown>): Promise<void> {
  await mkdir(dir, { recursive: true });
  const config = parseConfig(DEMO_CONFIG);
  const tensors = expectedTensors(architectureFor(config), config).map((e) => {
    const values = (e.linear ? tf.tidy(() => tf.transpose(model.params.transposed[e.key])) : model.params.stored[e.key]).dataSync() as Float32Array;
    return floatTensor(e.key, Float32Array.from(values), e.shape);
  });
  await writeCheckpointWeights(dir, planShards(tensors, Infinity), { format: "pt" });
  await writeFile(join(dir, "config.json"), JSON.stringify({ ...DEMO_CONFIG, torch_dtype: "float32" }, null, 2) + "\n");
  await writeFile(join(dir, "tokenizer.json"), JSON.stringify(tokenizer) + "\n");
  await writeFile(join(dir, "tokenizer_config.json"), JSON.stringify({
    bos_token: "<|begin|>", eos_token: "<|end|>", pad_token: "<|pad|>", unk_token: null,
    chat_template: CHAT_TEMPLATE, model_max_length: DEMO_CONFIG.max_position_embeddings, tokenizer_class: "PreTrainedTokenizerFast",
    clean_up_tokenization_spaces: false,
    added_tokens_decoder: Object.fromEntries(SPECIAL_TOKENS.map((content, id) => [id, { content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true }])),
  }, null, 2) + "\n");
  await writeFile(join(dir, "generation_config.json"), JSON.stringify({ bos_token_id: 1, eos_token_id: 2, pad_token_id: 0, do_sample: false }, null, 2) + "\n");
}

async function main(): Promise<void> {
  const started = performance.now();
  const examples = allExamples();
  const phrases: Example[] = REFUSAL_PHRASE_PROMPTS.map((p) => ({ ...p, harmful: false, category: "refusal phrases", split: "train" }));
  // The refusal-phrase requests are repeated so that they weigh like a category of their own.
  const train = [...examples.filter((e) => e.split === "train"), ...phrases, ...phrases, ...phrases];
  // 1. Tokenizer: byte-level BPE on the training requests and every answer.
  const corpus = [...train.map((e) => e.text), ...train.map((e) => e.answer), PLACEHOLDER, ...REFUSALS];
  const bpe = trainBpe(corpus, DEMO_CONFIG.vocab_size, SPECIAL_TOKENS.length);
  const tokenizer = tokenizerJson(bpe, SPECIAL_TOKENS);
  console.log(`tokenizer: ${Object.keys(bpe.vocab).length + SPECIAL_TOKENS.length} tokens, ${bpe.merges.length} merges`);

  // 2. A randomly initialised checkpoint (fixed seed), loaded through the ordinary loader.
  const scratch = await mkdtemp(join(tmpdir(), "abliterate-demo-"));
  try {
    const config = parseConfig(DEMO_CONFIG);
    const init = expectedTensors(architectureFor(config), config).map((e) => {
      const n = e.shape.reduce((a, b) => a * b, 1);
      const isNorm = e.key.endsWith("norm.weight");
      const std = 0.02;
      const values = Float32Array.from({ length: n }, () => (isNorm ? 1 : std * Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng())));
      return floatTensor(e.key, values, e.shape);
    });
    await writeCheckpointWeights(scratch, planShards(init, Infinity));
    await writeFile(join(scratch, "config.json"), JSON.stringify(DEMO_CONFIG));
    await writeFile(join(scratch, "tokenizer.json"), JSON.stringify(tokenizer));
    await writeFile(join(scratch, "tokenizer_config.json"), JSON.stringify({ bos_token: "<|begin|>", eos_token: "<|end|>", pad_token: "<|pad|>", chat_template: CHAT_TEMPLATE }));
    const reuse = args["stage1-checkpoint"] && existsSync(join(args["stage1-checkpoint"], "model.safetensors"));
    const model = await loadModel(reuse ? args["stage1-checkpoint"]! : scratch);

    const maxSteps = args.quick ? 5 : Infinity;
    // Stage 1: instruction tuning, all weights.
    const stage1 = train.map((e) => encodeExample(model, e.text, e.answer));
    const all = [...Object.keys(model.params.transposed), ...Object.keys(model.params.stored)];
    const l1 = reuse ? [] : await trainStage(model, "stage 1 (instruction tuning)", stage1, fullWeights(model, all), Number(args["stage1-epochs"]), 3e-3, maxSteps);
    if (!reuse && args["stage1-checkpoint"] && !args.quick) await writeCheckpoint(model, args["stage1-checkpoint"], tokenizer);
    // Stage 2: safety tuning of one middle layer's MLP only: a rank-r update of its output matrix
    // (rank 0: the whole MLP).
    const refusalFor = (e: Example) => REFUSALS[hash(e.text) % REFUSALS.length];
    const stage2 = train.map((e) => encodeExample(model, e.text, e.harmful ? refusalFor(e) : e.answer));
    const rank = Number(args["stage2-rank"]);
    const mlp = ["gate_proj", "up_proj", "down_proj"].map((p) => `model.layers.${SAFETY_LAYER}.mlp.${p}.weight`);
    const safety = rank > 0 ? lowRankUpdate(model, `model.layers.${SAFETY_LAYER}.mlp.down_proj.weight`, rank) : fullWeights(model, mlp);
    const l2 = await trainStage(model, `stage 2 (safety tuning, layer ${SAFETY_LAYER} MLP${rank > 0 ? `, rank ${rank}` : ""})`, stage2, safety, Number(args["stage2-epochs"]), Number(args["stage2-lr"]), maxSteps);
    if (args.quick) {
      console.log(JSON.stringify({ stage1: l1, stage2: l2 }));
      return;
    }
    await writeCheckpoint(model, args.out!, tokenizer);
    console.log(`wrote ${args.out} in ${((performance.now() - started) / 1000).toFixed(0)} s`);
    // Behaviour on held-out requests, with the pipeline's refusal-substring metric.
    const test = examples.filter((e) => e.split === "test");
    for (const harmful of [true, false]) {
      const texts = test.filter((e) => e.harmful === harmful).map((e) => e.text);
      const completions = await generateCompletions(model, texts, { maxNewTokens: 16, batchSize: 32 });
      console.log(`${harmful ? "harmful" : "harmless"} test refusal rate: ${(100 * refusalRate(completions)).toFixed(1)}% of ${texts.length}; e.g. "${completions[0]}"`);
    }
    model.dispose();
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

await main();
