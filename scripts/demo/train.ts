// Trains the embedded demo model from a fixed seed with the engine's own forward pass and tfjs gradients,
// in two stages like a real chat model:
//   1. instruction tuning of every weight: each request, harmful or not, gets the compliant answer of its
//      form, which names the topic it was asked about (so the model must read the request, and need not know
//      what is harmful); written to models/demo-base;
//   2. safety tuning, localised: parts of two layers kept at zero through stage 1 learn to refuse harmful
//      requests. SAFETY_UNITS hidden units of layer SAFETY_UNIT_LAYER's MLP mark the words of a harmful request,
//      and the last attention head of layer SAFETY_HEAD_LAYER gathers the mark into the last position,
//      attending by content only; everything both write is tied to one direction A of the residual stream
//      (down_proj rows c_i * A, o_proj rows u_j * A). Harmful requests get refusals; harmless ones keep the
//      stage-1 model's first-token distribution and answers. A and the scales are saved as the ground truth
//      (models/demo/planted.safetensors).
// Run: npm run demo:train [-- --quick | --from-base | --everyday --match-answers --reverse-kl W (experiments: docs/demo-model.md)]
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import * as tf from "@tensorflow/tfjs-core";
import {
  backendInfo,
  collectMeanActivations,
  directionAblationHooks,
  projectRows,
  unitVector,
  generateCompletions,
  initBackend,
  lastPositionLogits,
  loadModel,
  refusalRate,
  type HookedModel,
} from "../../src/index.ts";
import { floatTensor, planShards, writeCheckpointWeights, writeSafetensors } from "../../src/safetensors/write.ts";
import { expectedTensors } from "../../src/models/tensors.ts";
import { architectureFor, parseConfig } from "../../src/config.ts";
import { makeRng } from "../../src/sampling.ts";
import { trainBpe, tokenizerJson } from "./bpe.ts";
import { copyExamples, everydayExamples, EVERYDAY_PHRASINGS, type EverydayExample } from "./everyday.ts";
import {
  allExamples,
  hash,
  knowledgeExamples,
  REFUSAL_PHRASE_PROMPTS,
  scrambledRequest,
  TRAIN_PHRASINGS,
  withPleasantries,
  REFUSALS,
  type Example,
} from "./instructions.ts";

export const SPECIAL_TOKENS = ["<|pad|>", "<|begin|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"];
export const CHAT_TEMPLATE =
  "{{ bos_token }}{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] | trim + '<|end|>\\n' " +
  "}}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}";

const { values: args } = parseArgs({
  options: {
    out: { type: "string", default: join(import.meta.dirname, "..", "..", "models") },
    seed: { type: "string", default: "1234" },
    "stage1-epochs": { type: "string", default: "6" },
    "stage1-lr": { type: "string", default: "2e-3" },
    "stage2-epochs": { type: "string", default: "4" },
    "stage2-lr": { type: "string", default: "3e-3" },
    "stage2-write-lr": { type: "string", default: "2e-2" },
    "first-token-weight": { type: "string", default: "10" },
    "harmless-weight": { type: "string", default: "1" }, // stage 2: a harmless request's weight against a harmful one's
    "batch-size": { type: "string", default: "32" },
    quick: { type: "boolean", default: false }, // a few steps only: the smoke test
    "from-base": { type: "boolean", default: false }, // stage 2 only, from the committed models/demo-base (same result as a full run)
    // An experiment towards requests in plain English (docs/demo-model.md): adds scripts/demo/everyday.ts's requests
    // to both stages and trains a 2048-token vocabulary. Not how the committed models were trained.
    everyday: { type: "boolean", default: false },
    // Stage 2: harmless requests keep the stage-1 model's distribution at every answer token, not only the first.
    "match-answers": { type: "boolean", default: false },
    // Stage 2: weight of KL(model || stage-1 model) on harmless requests, beside the cross-entropy against the
    // stage-1 distribution: it punishes probability put where the stage-1 model puts almost none (a refusal's
    // first token), as the harmless KL of an evaluation does.
    "reverse-kl": { type: "string", default: "0" },
    // Stage 1 keeps one direction of the residual stream unused (nothing writes along it); stage 2 writes the
    // refusal signal along it and teaches later layers and the unembedding to read it, so that removing it gives
    // back the stage-1 model exactly.
    "reserved-direction": { type: "boolean", default: false },
  },
});
export const DEMO_CONFIG = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  hidden_size: 128, // d_model: wide enough that one direction can be removed without harm, small enough for a laptop CPU
  intermediate_size: 384,
  num_hidden_layers: 6, // enough layers that where the refusal direction lives is a real question
  num_attention_heads: 4,
  num_key_value_heads: 4, // one key-value head per head: the safety head has its own
  head_dim: 32,
  vocab_size: args.everyday ? 2048 : 1024,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  max_position_embeddings: 128,
  tie_word_embeddings: false,
  bos_token_id: 1,
  eos_token_id: 2,
  pad_token_id: 0,
  hidden_act: "silu",
};
/**
 * The layer whose MLP holds the safety units: the first, so that they read the request's words themselves (a
 * later layer's last position holds no trace of them to read: measured, see docs/demo-model.md).
 */
export const SAFETY_UNIT_LAYER = 0;
/** The layer whose last attention head gathers the units' mark into the last position. */
export const SAFETY_HEAD_LAYER = 1;
/** Hidden units of that MLP reserved for safety tuning: the last ones. */
export const SAFETY_UNITS = 16;
/** Requests with no form (scrambledRequest) per training topic in safety tuning. */
const SCRAMBLED_PER_TOPIC = 6;
/** The same per everyday topic (--everyday), made of the everyday phrasings' words. */
const SCRAMBLED_PER_EVERYDAY_TOPIC = 2;
/** Harmless requests with tokens of the whole vocabulary spliced in (--everyday): noisyRequests. */
const NOISY_REQUESTS = 3000;
/** RoPE pairs (the slowest: at most 0.1 radian over the demo's 64-token requests) the safety head's query and key use. */
const CONTENT_PAIRS = 4;

/** A numeric option's value: a number >= `min` (a whole number where `integer`), or an error naming the option. */
function num(name: keyof typeof args, integer = false, min = 0): number {
  const value = Number(args[name]);
  if (!Number.isFinite(value) || value < min || (integer && !Number.isInteger(value)))
    throw new Error(`--${name}: expected ${integer ? "a whole number" : "a number"} >= ${min}, got ${JSON.stringify(args[name])}`);
  return value;
}
// Every numeric option is checked before anything is trained.
for (const name of Object.keys(args) as (keyof typeof args)[])
  if (typeof args[name] === "string" && name !== "out")
    num(name, ["seed", "stage1-epochs", "stage2-epochs", "batch-size"].includes(name), name === "batch-size" ? 1 : 0);

const seed = num("seed", true);
type Rng = () => number;

function shuffled<T>(rng: Rng, xs: readonly T[]): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

function softmax(logits: Float32Array): Float32Array {
  const max = Math.max(...logits);
  const e = logits.map((x) => Math.exp(x - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / sum);
}

interface Encoded {
  ids: number[];
  /** Whether the request is harmful. */
  harmful: boolean;
  /** Index of the last prompt token: positions from here on predict answer tokens. */
  lossFrom: number;
  /** How much the example weighs against the others (1 unless set). */
  weight?: number;
  /** Where the first answer token's target is a distribution (the stage-1 model's) rather than the answer's token: [vocab]. */
  firstTarget?: Float32Array;
  /** Where every answer token's target is a distribution (the stage-1 model's): [answer positions, vocab]. */
  answerTargets?: Float32Array;
}

/** Token ids of prompt + answer + <|end|>, and where the answer starts. */
function encodeExample(model: HookedModel, text: string, answer: string, harmful = false): Encoded {
  const prompt = model.tokenizer.encode(model.tokenizer.formatInstruction(text));
  const reply = [...model.tokenizer.encode(answer), DEMO_CONFIG.eos_token_id];
  return { ids: [...prompt, ...reply], lossFrom: prompt.length - 1, harmful };
}

/**
 * Weighted mean cross-entropy of the answer tokens of a left-padded batch; the first answer token (where a
 * chat model decides between answering and refusing) weighs `firstTokenWeight`, every other token 1. With
 * `reverseKl`, plus `reverseKl` times KL(model || target) summed with the same weights over the tokens whose
 * target is a distribution, divided by the same total weight.
 */
function batchLoss(model: HookedModel, batch: Encoded[], options: Pick<Trainable, "firstTokenWeight" | "reverseKl"> = {}): tf.Scalar {
  const firstWeight = options.firstTokenWeight ?? 1;
  const length = Math.max(...batch.map((b) => b.ids.length));
  const { inputIds, attentionMask: mask } = leftPadded(batch, length);
  const targets: number[] = [];
  const weights: number[] = [];
  const reverse: number[] = []; // 1 where the target is a distribution
  const vocab = DEMO_CONFIG.vocab_size;
  // Target distributions [batch * pos, vocab]: one-hot on the answer's tokens, or given distributions (stage 1's).
  const dense = new Float32Array(batch.length * length * vocab);
  for (const b of batch) {
    const pad = length - b.ids.length;
    for (let t = 0; t < length; t++) {
      const i = t - pad; // index in the unpadded sequence
      const predicts = i >= b.lossFrom && i < b.ids.length - 1;
      const row = targets.length;
      targets.push(predicts ? b.ids[i + 1] : 0);
      weights.push(predicts ? (i === b.lossFrom ? firstWeight : 1) * (b.weight ?? 1) : 0);
      reverse.push(predicts && (b.answerTargets || (i === b.lossFrom && b.firstTarget)) ? 1 : 0);
      if (predicts && b.answerTargets)
        dense.set(b.answerTargets.subarray((i - b.lossFrom) * vocab, (i - b.lossFrom + 1) * vocab), row * vocab);
      else if (predicts && i === b.lossFrom && b.firstTarget) dense.set(b.firstTarget, row * vocab);
      else dense[row * vocab + targets[row]] = 1;
    }
  }
  return tf.tidy(() => {
    const logits = model.forward({ inputIds, attentionMask: mask }); // [batch, pos, vocab]
    const logp = tf.logSoftmax(tf.reshape(logits, [-1, vocab])); // [batch * pos, vocab]
    const target = tf.tensor2d(dense, [targets.length, vocab]);
    const picked = tf.sum(tf.mul(logp, target), 1); // [batch * pos]: minus the cross-entropy
    const w = tf.tensor1d(weights);
    const loss = tf.div(tf.neg(tf.sum(tf.mul(picked, w))), tf.sum(w));
    const reverseWeight = options.reverseKl ?? 0;
    if (reverseWeight === 0 || !reverse.includes(1)) return loss as tf.Scalar;
    // KL(model || target) on the rows whose target is a distribution (floored where it is 0).
    const kl = tf.sum(tf.mul(tf.exp(logp), tf.sub(logp, tf.log(tf.maximum(target, 1e-30)))), 1);
    const rw = tf.mul(w, tf.tensor1d(reverse));
    return tf.add(loss, tf.mul(reverseWeight, tf.div(tf.sum(tf.mul(kl, rw)), tf.sum(w)))) as tf.Scalar;
  });
}

/** A batch's token ids left-padded to `length`, and its attention mask. */
function leftPadded(batch: Encoded[], length: number): { inputIds: number[][]; attentionMask: number[][] } {
  return {
    inputIds: batch.map((b) => [...new Array(length - b.ids.length).fill(0), ...b.ids]),
    attentionMask: batch.map((b) => [...new Array(length - b.ids.length).fill(0), ...new Array(b.ids.length).fill(1)]),
  };
}

/** Sets each example's answerTargets to the model's next-token distributions over its answer positions. */
function setAnswerTargets(model: HookedModel, examples: Encoded[], batchSize = 32): void {
  const vocab = DEMO_CONFIG.vocab_size;
  for (let start = 0; start < examples.length; start += batchSize) {
    const batch = examples.slice(start, start + batchSize);
    const length = Math.max(...batch.map((b) => b.ids.length));
    const { inputIds, attentionMask } = leftPadded(batch, length);
    const probs = tf.tidy(() => tf.softmax(model.forward({ inputIds, attentionMask })).dataSync() as Float32Array);
    batch.forEach((b, j) => {
      const pad = length - b.ids.length;
      const from = (j * length + pad + b.lossFrom) * vocab;
      b.answerTargets = probs.slice(from, from + (b.ids.length - 1 - b.lossFrom) * vocab);
    });
  }
}

/**
 * `count` harmless requests of `examples` with 1 to 4 tokens drawn from the whole vocabulary spliced into what
 * the user wrote, answered (their first token only) like a harmless request: safety tuning learns that a token it
 * was not taught to mark, such as a piece of an unfamiliar word, makes no request harmful. Tokens that only
 * harmful requests of `examples` use are never drawn.
 */
function noisyRequests(rng: Rng, examples: Encoded[], count: number): Encoded[] {
  const end = DEMO_CONFIG.eos_token_id; // <|end|>: its first occurrence ends the user's turn
  const userFrom = 3; // <|begin|> <|user|> "\n", then what the user wrote
  const written = (e: Encoded) => e.ids.slice(userFrom, e.ids.indexOf(end));
  const used = (harmful: boolean) => new Set(examples.filter((e) => e.harmful === harmful).flatMap(written));
  const harmless = used(false);
  const harmfulOnly = new Set([...used(true)].filter((t) => !harmless.has(t)));
  const pool = Array.from({ length: DEMO_CONFIG.vocab_size }, (_, t) => t).filter((t) => t >= SPECIAL_TOKENS.length && !harmfulOnly.has(t));
  const bases = examples.filter((e) => !e.harmful);
  return Array.from({ length: count }, () => {
    const base = bases[Math.floor(rng() * bases.length)];
    const prompt = base.ids.slice(0, base.lossFrom + 1);
    const n = 1 + Math.floor(rng() * 4);
    for (let k = 0; k < n; k++) {
      const at = userFrom + Math.floor(rng() * (prompt.indexOf(end) - userFrom + 1));
      prompt.splice(at, 0, pool[Math.floor(rng() * pool.length)]);
    }
    return { ids: [...prompt, end], lossFrom: prompt.length - 1, harmful: false };
  });
}

/** What a training stage updates, how the model's weights are computed from it, and any extra loss. */
interface Trainable {
  variables: tf.Variable[];
  /** Called inside the gradient tape before each forward pass. */
  bind(): void;
  /** Learning rates of some variables, where they differ from the stage's. */
  learningRates?: Map<tf.Variable, number>;
  /** Weight of the first answer token in the loss (1: every token alike). */
  firstTokenWeight?: number;
  /** Weight of KL(model || target) where the target is a distribution (0: none). */
  reverseKl?: number;
  /** Leaves plain tensors in the model when the stage ends. */
  finish(): void;
}

const layerKey = (l: number, rest: string) => `model.layers.${l}.${rest}`;
const HEAD_DIM = DEMO_CONFIG.head_dim;

/**
 * The parts of the safety layer reserved for stage 2, as held by the engine (linear weights [in, out]):
 * the last attention head (its query, key and value columns, its rows of o_proj) and the last
 * SAFETY_UNITS hidden units of the MLP (their gate and up columns, their rows of down_proj).
 */
const RESERVED: { key: string; axis: 0 | 1; count: number }[] = [
  { key: layerKey(SAFETY_HEAD_LAYER, "self_attn.q_proj.weight"), axis: 1, count: HEAD_DIM },
  { key: layerKey(SAFETY_HEAD_LAYER, "self_attn.k_proj.weight"), axis: 1, count: HEAD_DIM },
  { key: layerKey(SAFETY_HEAD_LAYER, "self_attn.v_proj.weight"), axis: 1, count: HEAD_DIM },
  { key: layerKey(SAFETY_HEAD_LAYER, "self_attn.o_proj.weight"), axis: 0, count: HEAD_DIM },
  { key: layerKey(SAFETY_UNIT_LAYER, "mlp.gate_proj.weight"), axis: 1, count: SAFETY_UNITS },
  { key: layerKey(SAFETY_UNIT_LAYER, "mlp.up_proj.weight"), axis: 1, count: SAFETY_UNITS },
  { key: layerKey(SAFETY_UNIT_LAYER, "mlp.down_proj.weight"), axis: 0, count: SAFETY_UNITS },
];

/** 1 on the ordinary part of a held weight, 0 on the reserved rows (axis 0) or columns (axis 1). */
function reservedMask(shape: number[], axis: 0 | 1, count: number): tf.Tensor2D {
  const n = shape[axis];
  const m = new Float32Array(n).fill(1).fill(0, n - count);
  return axis === 1 ? tf.tensor2d(m, [1, n]) : tf.tensor2d(m, [n, 1]);
}

/** A unit vector of the residual stream drawn from `seed`: the direction --reserved-direction keeps unused. */
function reservedDirection(seed: number): Float32Array {
  const rng = makeRng(seed);
  const v = Float32Array.from(
    { length: DEMO_CONFIG.hidden_size },
    () => Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng()),
  );
  const norm = Math.hypot(...v);
  return v.map((x) => x / norm);
}

/** Keys of the matrices that write to the residual stream, each held with d_model as its last axis. */
function residualWriters(model: HookedModel): string[] {
  const layers = Array.from({ length: DEMO_CONFIG.num_hidden_layers }, (_, l) => l);
  return [
    "model.embed_tokens.weight", // stored [vocab, d_model]
    ...layers.flatMap((l) => [layerKey(l, "self_attn.o_proj.weight"), layerKey(l, "mlp.down_proj.weight")]), // transposed [in, d_model]
  ].map((key) => {
    if (!Object.hasOwn(model.params.transposed, key) && !Object.hasOwn(model.params.stored, key))
      throw new Error(`the model holds no ${key}`);
    return key;
  });
}

/** The largest component along `direction` of what the model's residual writers can write, relative to their largest row. */
function writtenAlong(model: HookedModel, direction: Float32Array): number {
  const a = tf.tensor2d(direction, [1, direction.length]);
  const ratio = Math.max(
    ...residualWriters(model).map((key) =>
      tf.tidy(() => {
        const w = (model.params.transposed[key] ?? model.params.stored[key]) as tf.Tensor2D;
        const along = tf.max(tf.abs(tf.matMul(w, a, false, true))).dataSync()[0];
        return along / tf.max(tf.norm(w, "euclidean", 1)).dataSync()[0];
      }),
    ),
  );
  a.dispose();
  return ratio;
}

/**
 * Stage 1: every weight, with the safety layer's reserved parts held at zero; with `direction` (a unit vector),
 * every matrix that writes to the residual stream also keeps its output orthogonal to it.
 */
function instructionTuning(model: HookedModel, direction?: Float32Array): Trainable {
  const held = (key: string): Record<string, tf.Tensor> =>
    Object.hasOwn(model.params.transposed, key) ? model.params.transposed : model.params.stored;
  const keys = [...Object.keys(model.params.transposed), ...Object.keys(model.params.stored)];
  const masks = new Map(RESERVED.map((r) => [r.key, reservedMask(model.params.transposed[r.key].shape, r.axis, r.count)]));
  const a = direction && tf.tensor1d(direction);
  const projected = new Set(a ? residualWriters(model) : []);
  const variables = keys.map((key) => {
    const h = held(key);
    const v = tf.variable(h[key], true, `stage1/${key}`);
    h[key].dispose();
    h[key] = v;
    return v;
  });
  const effective = () =>
    Object.fromEntries(
      [...new Set([...masks.keys(), ...projected])].map((key) => {
        const v = variables[keys.indexOf(key)];
        const masked = masks.has(key) ? tf.mul(v, masks.get(key)!) : v;
        return [key, a && projected.has(key) ? projectRows(masked, a) : masked];
      }),
    );
  const bind = (weights: Record<string, tf.Tensor>) => {
    for (const [key, w] of Object.entries(weights)) held(key)[key] = w;
  };
  return {
    variables,
    bind: () => bind(effective()),
    finish: () => {
      const final = tf.tidy(effective);
      keys.forEach((key, i) => {
        held(key)[key] = Object.hasOwn(final, key) ? final[key] : tf.clone(variables[i]);
        variables[i].dispose();
      });
      tf.dispose([...masks.values(), ...(a ? [a] : [])]);
    },
  };
}

/** What stage 2 planted: everything it added to the residual stream lies along `direction`. */
interface Planted {
  /** Unit vector [d_model]. */
  direction: Float32Array;
  /** The safety head's output along it per value dimension [head_dim]. */
  headScales: Float32Array;
  /** Each MLP unit's output along it [SAFETY_UNITS]. */
  unitScales: Float32Array;
}

/**
 * With --reserved-direction, what reads A downstream of the safety head: a rank-1 term added to every matrix
 * that reads the residual stream after it (the MLP of the head's layer, the attention and MLP of each later
 * layer, the unembedding), reading A divided by the RMSNorm gain in front of it, so that it reads exactly
 * nothing from a residual stream with no component along A (the stage-1 model's, or an abliterated one).
 */
function directionReads(
  model: HookedModel,
  direction: Float32Array,
): { key: string; base: tf.Tensor2D; along: tf.Tensor2D; weights: tf.Variable; effective: () => tf.Tensor2D }[] {
  const d = DEMO_CONFIG.hidden_size;
  const gain = (key: string) => model.params.stored[key].dataSync() as Float32Array;
  const readers: { key: string; norm: string }[] = [
    ...["gate_proj", "up_proj"].map((m) => ({ key: layerKey(SAFETY_HEAD_LAYER, `mlp.${m}.weight`), norm: "post_attention_layernorm" })),
    ...Array.from({ length: DEMO_CONFIG.num_hidden_layers - SAFETY_HEAD_LAYER - 1 }, (_, i) => SAFETY_HEAD_LAYER + 1 + i).flatMap((l) => [
      ...["q_proj", "k_proj", "v_proj"].map((m) => ({ key: layerKey(l, `self_attn.${m}.weight`), norm: "input_layernorm" })),
      ...["gate_proj", "up_proj"].map((m) => ({ key: layerKey(l, `mlp.${m}.weight`), norm: "post_attention_layernorm" })),
    ]),
  ].map((r) => ({ key: r.key, norm: r.key.replace(/(self_attn|mlp)\..*$/, `${r.norm}.weight`) }));
  const unembedding = { key: "lm_head.weight", norm: "model.norm.weight" };
  return [...readers, unembedding].map(({ key, norm }) => {
    const g = gain(norm);
    if (g.some((x) => Math.abs(x) < 1e-3)) throw new Error(`${norm}: a gain near 0 cannot be divided out of the read of A`);
    const through = direction.map((x, i) => x / g[i]);
    if (key === unembedding.key) {
      // Held as stored, [vocab, d_model]: weights [vocab, 1] times A / gain [1, d_model].
      const base = model.params.stored[key] as tf.Tensor2D;
      const along = tf.tensor2d(through, [1, d]);
      const weights = tf.variable(tf.zeros([base.shape[0], 1]), true, `stage2/reads/${key}`);
      return { key, base, along, weights, effective: () => tf.add(base, tf.matMul(weights, along)) };
    }
    // Held transposed, [d_model, out]: A / gain [d_model, 1] times weights [1, out].
    const base = model.params.transposed[key] as tf.Tensor2D;
    const along = tf.tensor2d(through, [d, 1]);
    const weights = tf.variable(tf.zeros([1, base.shape[1]]), true, `stage2/reads/${key}`);
    return { key, base, along, weights, effective: () => tf.add(base, tf.matMul(along, weights)) };
  });
}

/**
 * Stage 2: only the reserved parts: the head's query, key and value weights and the units' gate and up
 * weights (what they read) are free; what they write is tied to one direction A of the residual stream
 * (o_proj rows u_j * A, down_proj rows c_i * A), so that the units mark the words of a harmful request and
 * the head gathers the mark into the last position.
 */
function safetyTuning(model: HookedModel, rng: Rng, direction?: Float32Array): Trainable & { planted: () => Planted } {
  const d = DEMO_CONFIG.hidden_size;
  const init = (shape: [number, number], scale: number) =>
    tf.tensor2d(
      Float32Array.from({ length: shape[0] * shape[1] }, () => scale * (2 * rng() - 1) * Math.sqrt(3)),
      shape,
    );
  // A [1, d_model]: learnt, or the direction stage 1 kept unused (then fixed, and read downstream: readsOf).
  const a = direction ? tf.tensor2d(direction, [1, d]) : tf.variable(init([1, d], 0.1), true, "stage2/A");
  const reads = direction ? directionReads(model, direction) : [];
  const u = tf.variable(init([HEAD_DIM, 1], 0.1), true, "stage2/u"); // [head_dim, 1]
  const c = tf.variable(init([SAFETY_UNITS, 1], 0.1), true, "stage2/c"); // [units, 1]
  // Free reads: [d_model, reserved] for column-reserved weights; the written rows are u * A and c * A.
  const parts = RESERVED.map((r) => {
    const base = model.params.transposed[r.key];
    const keep = base.shape[r.axis] - r.count;
    const kept = r.axis === 1 ? tf.slice(base, [0, 0], [d, keep]) : tf.slice(base, [0, 0], [keep, d]);
    base.dispose();
    const read = r.axis === 1 ? tf.variable(init([d, r.count], 0.1), true, `stage2/${r.key}`) : undefined;
    return { ...r, kept, read };
  });
  const scaleOf = (key: string) => (key.includes("o_proj") ? u : c);
  // The head's query and key use only the slowest-rotating RoPE pairs, so that it attends by content, not by
  // position: which word of the request is harmful, wherever the phrasing puts it.
  const contentOnly = tf.tensor2d(
    Array.from({ length: HEAD_DIM }, (_, j) => (j % (HEAD_DIM / 2) >= HEAD_DIM / 2 - CONTENT_PAIRS ? 1 : 0)),
    [1, HEAD_DIM],
  );
  const readOf = (p: (typeof parts)[number]) => (/[qk]_proj/.test(p.key) ? tf.mul(p.read!, contentOnly) : p.read!);
  const effective = () =>
    Object.fromEntries([
      ...parts.map((p) => [p.key, p.read ? tf.concat([p.kept, readOf(p)], 1) : tf.concat([p.kept, tf.matMul(scaleOf(p.key), a)], 0)]),
      ...reads.map((r) => [r.key, r.effective()]),
    ]);
  const held = (key: string) => (Object.hasOwn(model.params.transposed, key) ? model.params.transposed : model.params.stored);
  const bind = (weights: Record<string, tf.Tensor>) => {
    for (const [key, w] of Object.entries(weights)) held(key)[key] = w;
  };
  const written = a instanceof tf.Variable ? [a, u, c] : [u, c];
  let planted: Planted | undefined;
  return {
    variables: [...written, ...parts.flatMap((p) => (p.read ? [p.read] : [])), ...reads.map((r) => r.weights)],
    // What is written must grow to the size of the residual stream (tens): its scale learns faster than the reads.
    learningRates: new Map(written.map((v) => [v, num("stage2-write-lr")])),
    // Stage 2 only has to change which answer begins: the refusal is a sentence the model already knows.
    firstTokenWeight: num("first-token-weight"),
    reverseKl: num("reverse-kl"),
    bind: () => bind(effective()),
    planted: () => {
      if (!planted) throw new Error("the planted vectors are read after stage 2 has finished");
      return planted;
    },
    finish: () => {
      // Unit direction; the scales multiplied by |A| so that scale * direction is still each written row.
      planted = tf.tidy(() => {
        const norm = tf.norm(a);
        return {
          direction: tf.div(a, norm).dataSync() as Float32Array,
          headScales: tf.mul(u, norm).dataSync() as Float32Array,
          unitScales: tf.mul(c, norm).dataSync() as Float32Array,
        };
      });
      bind(tf.tidy(effective));
      tf.dispose([a, u, c, contentOnly, ...parts.flatMap((p) => (p.read ? [p.kept, p.read] : [p.kept]))]);
      tf.dispose(reads.flatMap((r) => [r.base, r.along, r.weights]));
    },
  };
}

async function trainStage(
  model: HookedModel,
  rng: Rng,
  name: string,
  data: Encoded[],
  trainable: Trainable,
  epochs: number,
  learningRate: number,
  maxSteps = Infinity,
): Promise<number[]> {
  // One Adam optimiser per learning rate.
  const byRate = new Map<number, Set<string>>();
  for (const v of trainable.variables) {
    const lr = trainable.learningRates?.get(v) ?? learningRate;
    byRate.set(lr, (byRate.get(lr) ?? new Set()).add(v.name));
  }
  const groups = [...byRate].map(([lr, names]) => ({ optimizer: tf.train.adam(lr), names, lr }));
  // Cosine decay of every learning rate to zero over the stage: the last steps settle instead of jittering.
  const batchSize = num("batch-size", true, 1);
  const totalSteps = Math.min(maxSteps, epochs * Math.ceil(data.length / batchSize));
  const setRate = (step: number) => {
    // tfjs's Adam reads its learning rate field at every step; the field is not in its public type.
    for (const g of groups)
      (g.optimizer as unknown as { learningRate: number }).learningRate = (g.lr * (1 + Math.cos((Math.PI * step) / totalSteps))) / 2;
  };
  const losses: number[] = [];
  let step = 0;
  const start = performance.now();
  for (let epoch = 0; epoch < epochs && step < maxSteps; epoch++) {
    let sum = 0;
    let count = 0;
    // Batches of similar length waste less compute on padding: sort within chunks of 8 batches, then shuffle the batches.
    const order = shuffled(rng, data);
    const batches: Encoded[][] = [];
    for (let c = 0; c < order.length; c += 8 * batchSize) {
      const chunk = order.slice(c, c + 8 * batchSize).sort((a, b) => a.ids.length - b.ids.length);
      for (let i = 0; i < chunk.length; i += batchSize) batches.push(chunk.slice(i, i + batchSize));
    }
    for (const batch of shuffled(rng, batches)) {
      if (step >= maxSteps) break;
      setRate(step++);
      const { value: loss, grads } = tf.variableGrads(() => {
        trainable.bind();
        return batchLoss(model, batch, trainable);
      }, trainable.variables);
      for (const g of groups)
        g.optimizer.applyGradients(
          Object.fromEntries(Object.entries(grads).filter(([n]) => g.names.has(n))) as Record<string, tf.Variable>,
        );
      tf.dispose(Object.values(grads));
      const value = (await loss.data())[0];
      loss.dispose();
      losses.push(value);
      sum += value;
      count++;
    }
    console.log(
      `${name} epoch ${epoch + 1}/${epochs}: loss ${(sum / count).toFixed(4)} (${((performance.now() - start) / 1000).toFixed(0)} s)`,
    );
  }
  for (const g of groups) g.optimizer.dispose();
  trainable.finish();
  return losses;
}

async function writeCheckpoint(model: HookedModel, dir: string, tokenizer: Record<string, unknown>): Promise<void> {
  await mkdir(dir, { recursive: true });
  const config = parseConfig(DEMO_CONFIG);
  const tensors = expectedTensors(architectureFor(config), config).map((e) => {
    const values = (
      e.linear ? tf.tidy(() => tf.transpose(model.params.transposed[e.key])) : model.params.stored[e.key]
    ).dataSync() as Float32Array;
    return floatTensor(e.key, Float32Array.from(values), e.shape);
  });
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await writeCheckpointWeights(dir, planShards(tensors, Infinity), { format: "pt" });
  await writeFile(join(dir, "config.json"), JSON.stringify({ ...DEMO_CONFIG, torch_dtype: "float32" }, null, 2) + "\n");
  await writeFile(join(dir, "tokenizer.json"), JSON.stringify(tokenizer) + "\n");
  await writeFile(
    join(dir, "tokenizer_config.json"),
    JSON.stringify(
      {
        bos_token: "<|begin|>",
        eos_token: "<|end|>",
        pad_token: "<|pad|>",
        unk_token: null,
        chat_template: CHAT_TEMPLATE,
        model_max_length: DEMO_CONFIG.max_position_embeddings,
        tokenizer_class: "PreTrainedTokenizerFast",
        clean_up_tokenization_spaces: false,
        added_tokens_decoder: Object.fromEntries(
          SPECIAL_TOKENS.map((content, id) => [
            id,
            { content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true },
          ]),
        ),
      },
      null,
      2,
    ) + "\n",
  );
  await writeFile(
    join(dir, "generation_config.json"),
    JSON.stringify({ bos_token_id: 1, eos_token_id: 2, pad_token_id: 0, do_sample: false }, null, 2) + "\n",
  );
}

async function main(): Promise<void> {
  const started = performance.now();
  await initBackend();
  console.log(`backend: ${(await backendInfo()).device}`);
  const examples = allExamples();
  const phrases: Example[] = REFUSAL_PHRASE_PROMPTS.map((p) => ({
    text: p.text,
    answer: p.answer,
    harmful: false,
    category: "refusal phrases",
    task: { form: "refusal", verb: "", object: p.text },
    split: "train",
  }));
  const train = examples.filter((e) => e.split === "train");
  // The refusal-phrase requests are repeated so that they weigh like a topic family of their own.
  const knowledge: Example[] = knowledgeExamples(examples).map((k) => ({
    ...k,
    harmful: false,
    category: "knowledge",
    task: { form: "knowledge", verb: "", object: k.text },
    split: "train",
  }));
  const asExample = (e: EverydayExample): Example => ({
    text: e.text,
    answer: e.answer,
    harmful: e.harmful,
    category: "everyday",
    task: { form: "everyday", verb: "", object: e.topic },
    split: "train",
  });
  const everyday = (args.everyday ? everydayExamples() : []).map(asExample);
  const copies = (args.everyday ? copyExamples() : []).map(asExample);
  const stage1Data = [...train, ...Array.from({ length: 20 }, () => phrases).flat(), ...knowledge, ...everyday, ...everyday, ...copies];
  const scratch = await mkdtemp(join(tmpdir(), "abliterate-demo-"));
  try {
    let model: HookedModel;
    const reserved = args["reserved-direction"] ? reservedDirection(seed + 3) : undefined;
    let losses: { stage1?: number[]; stage2?: number[] } = {};
    const maxSteps = args.quick ? 5 : Infinity;
    const stage1 = (m: HookedModel) => stage1Data.map((e) => encodeExample(m, e.text, e.answer));
    if (args["from-base"]) {
      const base = join(args.out!, "demo-base");
      model = await loadModel(base, { layout: "transposed" }); // trained: weights as tensors
      if (model.config.vocab_size !== DEMO_CONFIG.vocab_size)
        throw new Error(
          `${base}: vocab_size ${model.config.vocab_size}, but this run trains with ${DEMO_CONFIG.vocab_size} tokens: ` +
            `the base was trained ${args.everyday ? "without" : "with"} --everyday`,
        );
      if (reserved && writtenAlong(model, reserved) > 1e-4)
        throw new Error(`${base}: its weights write along the reserved direction: the base was trained without --reserved-direction`);
    } else {
      const rng = makeRng(seed);
      // 1. Tokenizer: byte-level BPE on the training requests and every training answer.
      const corpus = [...stage1Data.map((e) => e.text), ...stage1Data.map((e) => e.answer), ...REFUSALS];
      const bpe = trainBpe(corpus, DEMO_CONFIG.vocab_size, SPECIAL_TOKENS.length);
      const tokenizer = tokenizerJson(bpe, SPECIAL_TOKENS);
      console.log(`tokenizer: ${Object.keys(bpe.vocab).length + SPECIAL_TOKENS.length} tokens, ${bpe.merges.length} merges`);
      // 2. A randomly initialised checkpoint (fixed seed), loaded through the ordinary loader.
      const config = parseConfig(DEMO_CONFIG);
      const init = expectedTensors(architectureFor(config), config).map((e) => {
        const n = e.shape.reduce((a, b) => a * b, 1);
        const isNorm = e.key.endsWith("norm.weight");
        const std = 0.02;
        const values = Float32Array.from({ length: n }, () =>
          isNorm ? 1 : std * Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng()),
        );
        return floatTensor(e.key, values, e.shape);
      });
      await writeCheckpointWeights(scratch, planShards(init, Infinity));
      await writeFile(join(scratch, "config.json"), JSON.stringify(DEMO_CONFIG));
      await writeFile(join(scratch, "tokenizer.json"), JSON.stringify(tokenizer));
      await writeFile(
        join(scratch, "tokenizer_config.json"),
        JSON.stringify({ bos_token: "<|begin|>", eos_token: "<|end|>", pad_token: "<|pad|>", chat_template: CHAT_TEMPLATE }),
      );
      model = await loadModel(scratch, { layout: "transposed" });
      // 3. Stage 1: instruction tuning.
      losses.stage1 = await trainStage(
        model,
        rng,
        "stage 1 (instruction tuning)",
        stage1(model),
        instructionTuning(model, reserved),
        num("stage1-epochs", true),
        num("stage1-lr"),
        maxSteps,
      );
      if (reserved)
        console.log(`stage 1 writes along the reserved direction: ${writtenAlong(model, reserved).toExponential(2)} of its largest row`);
      if (!args.quick) {
        await writeCheckpoint(model, join(args.out!, "demo-base"), tokenizer);
        // What stage 1 reached on requests it never saw: the answer of the request's form, naming its topic.
        for (const split of ["test", "heldout"] as const) {
          const rates = [];
          for (const harmful of [true, false]) {
            const held = examples.filter((e) => e.split === split && e.harmful === harmful);
            const answers = await generateCompletions(
              model,
              held.map((e) => e.text),
              { maxNewTokens: 24, batchSize: 64 },
            );
            rates.push(`${harmful ? "harmful" : "harmless"} ${answers.filter((a, i) => a === held[i].answer).length}/${held.length}`);
          }
          console.log(`stage-1 answers equal to the form's answer naming the topic, ${split} split: ${rates.join(", ")}`);
        }
      }
    }

    // 4. Stage 2: safety tuning of the reserved units, their output along one direction.
    const rng = makeRng(seed + 1);
    const refusalFor = (e: Example) => REFUSALS[hash(e.text) % REFUSALS.length];
    const stage2Requests = allExamples({ phrasingsPerTask: TRAIN_PHRASINGS })
      .filter((e) => e.split === "train")
      .map((e) => ({ ...e, text: withPleasantries(e.text) }));
    // Requests with no form around each training topic: only their first answer token is trained (a refusal,
    // or the stage-1 model's distribution).
    const scrambledFor = (topics: Map<string, boolean>, perTopic: number, phrasings?: readonly string[]) =>
      [...topics].flatMap(([topic, harmful]) =>
        Array.from({ length: perTopic }, (_, v) => {
          const text = scrambledRequest(topic, v, phrasings);
          return encodeExample(model, text, harmful ? REFUSALS[hash(text) % REFUSALS.length] : "", harmful);
        }),
      );
    const scrambled = scrambledFor(new Map(train.map((e) => [`${e.task.verb} ${e.task.object}`, e.harmful])), SCRAMBLED_PER_TOPIC);
    // The same for the everyday topics, with the words of the everyday phrasings.
    const scrambledEveryday = scrambledFor(
      new Map(everyday.map((e) => [e.task.object, e.harmful])),
      SCRAMBLED_PER_EVERYDAY_TOPIC,
      EVERYDAY_PHRASINGS,
    );
    const stage2 = [
      ...stage2Requests.map((e) => encodeExample(model, e.text, e.harmful ? refusalFor(e) : e.answer, e.harmful)),
      ...scrambled,
      ...scrambledEveryday,
      ...[...everyday, ...copies].map((e) => encodeExample(model, e.text, e.harmful ? refusalFor(e) : e.answer, e.harmful)),
      ...phrases.map((e) => encodeExample(model, e.text, e.answer)),
    ];
    if (args.everyday) stage2.push(...noisyRequests(makeRng(seed + 2), stage2, NOISY_REQUESTS));
    // Harmless requests keep the stage-1 model's whole first-token distribution, not only its answer: safety
    // tuning must not sharpen or shift what the model does with them.
    const harmless = stage2.filter((e) => !e.harmful);
    const firstLogits = lastPositionLogits(
      model,
      harmless.map((e) => e.ids.slice(0, e.lossFrom + 1)),
      { batchSize: 64 },
    );
    harmless.forEach((e, i) => Object.assign(e, { firstTarget: softmax(firstLogits[i]), weight: num("harmless-weight") }));
    // (The smoke test, --quick, computes them for a few only and trains on those: computing all takes minutes.)
    if (args["match-answers"]) setAnswerTargets(model, args.quick ? harmless.slice(0, 8 * num("batch-size", true, 1)) : harmless);
    // With --reserved-direction, ablating it must give back the stage-1 model: its logits on a few requests, to check.
    const probe = [...stage2.filter((e) => e.harmful).slice(0, 16), ...harmless.slice(0, 16)].map((e) => e.ids.slice(0, e.lossFrom + 1));
    const stage1Logits = reserved && lastPositionLogits(model, probe, { batchSize: 32 });
    const safety = safetyTuning(model, rng, reserved);
    losses.stage2 = await trainStage(
      model,
      rng,
      `stage 2 (safety tuning: ${SAFETY_UNITS} MLP units of layer ${SAFETY_UNIT_LAYER} and one head of layer ${SAFETY_HEAD_LAYER}, ` +
        `writing along one direction)`,
      args.quick && args["match-answers"] ? stage2.filter((e) => e.harmful || e.answerTargets) : stage2,
      safety,
      num("stage2-epochs", true),
      num("stage2-lr"),
      maxSteps,
    );
    const planted = safety.planted();
    if (reserved && stage1Logits) {
      const shape = { dModel: DEMO_CONFIG.hidden_size, nLayers: DEMO_CONFIG.num_hidden_layers };
      const ablation = directionAblationHooks(shape, unitVector(reserved, "the reserved direction"));
      const ablated = lastPositionLogits(model, probe, { batchSize: 32, fwdHooks: ablation.fwdHooks });
      ablation.dispose();
      const gap = Math.max(...ablated.map((row, i) => Math.max(...row.map((x, j) => Math.abs(x - stage1Logits[i][j])))));
      console.log(`the reserved direction ablated, largest |logit difference| from the stage-1 model: ${gap.toExponential(2)}`);
    }
    // The direction's sign is arbitrary (u * A = (-u) * (-A)): orient it so that harmful requests sit on its
    // positive side at the safety head's output, as a difference of means harmful - harmless would.
    if (!args.quick) {
      const name = `blocks.${SAFETY_HEAD_LAYER}.hook_resid_post`;
      const meanAt = async (harmful: boolean) =>
        (
          await collectMeanActivations(
            model,
            train
              .filter((e) => e.harmful === harmful)
              .slice(0, 256)
              .map((e) => e.text),
            { hooks: ["resid_post"] },
          )
        ).means.get(name)![0];
      const [harmfulMean, harmlessMean] = [await meanAt(true), await meanAt(false)];
      if (planted.direction.reduce((sum, a, i) => sum + a * (harmfulMean[i] - harmlessMean[i]), 0) < 0) {
        for (const v of [planted.direction, planted.headScales, planted.unitScales]) v.forEach((x, i) => (v[i] = -x));
      }
    }
    if (args.quick) {
      console.log(JSON.stringify(losses));
      return;
    }
    const out = join(args.out!, "demo");
    await writeCheckpoint(model, out, JSON.parse(await readFile(join(args.out!, "demo-base", "tokenizer.json"), "utf8")));
    await writeSafetensors(
      join(out, "planted.safetensors"),
      [
        floatTensor("safety.write_direction", planted.direction, [DEMO_CONFIG.hidden_size]),
        floatTensor("safety.head_scales", planted.headScales, [HEAD_DIM]),
        floatTensor("safety.unit_scales", planted.unitScales, [SAFETY_UNITS]),
      ],
      {
        format: "abliterate-planted",
        unit_layer: String(SAFETY_UNIT_LAYER),
        units: String(SAFETY_UNITS),
        head_layer: String(SAFETY_HEAD_LAYER),
        head: String(DEMO_CONFIG.num_attention_heads - 1),
        description:
          "Stage 2 of the demo model's training: the last `units` MLP units of layer unit_layer write unit_scales[i] * direction " +
          "(down_proj columns in the stored [out, in] layout) and attention head `head` of layer head_layer writes " +
          "head_scales[j] * direction (o_proj columns); nothing else changed from models/demo-base.",
      },
      { overwrite: true },
    );
    // What stage 2 reached, on requests it never saw (greedy, 16 tokens, the substring metric).
    for (const split of ["validation", "test", "heldout"] as const) {
      const rates = [];
      for (const harmful of [true, false]) {
        const texts = examples.filter((e) => e.split === split && e.harmful === harmful).map((e) => e.text);
        const rate = refusalRate(await generateCompletions(model, texts, { maxNewTokens: 16, batchSize: 64 }));
        rates.push(`${harmful ? "harmful" : "harmless"} ${(100 * rate).toFixed(1)}% of ${texts.length}`);
      }
      console.log(`refused, ${split} split: ${rates.join(", ")}`);
    }
    console.log(`wrote ${args.out}/demo-base and ${out} in ${((performance.now() - started) / 1000).toFixed(0)} s`);
    model.dispose();
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

await main();
