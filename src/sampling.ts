// Choosing the next token from logits: greedy, or sampled with temperature, top-k and top-p,
// from a seeded generator so that a notebook's samples are reproducible.

export interface SamplingOptions {
  /** 0 (default) is greedy decoding. */
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
}

/** mulberry32: a small, fast, seedable generator of floats in [0, 1). */
export function makeRng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

export function sampleToken(logits: Float32Array, options: SamplingOptions, rng: () => number): number {
  for (let i = 0; i < logits.length; i++) {
    if (Number.isNaN(logits[i]))
      throw new Error(`the model's next-token logits hold NaN (at token ${i}): its weights hold non-finite values; no answer can be read`);
  }
  const temperature = options.temperature ?? 0;
  if (temperature <= 0) return argmax(logits);
  let order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a]);
  if (options.topK && options.topK > 0) order = order.slice(0, options.topK);
  const max = logits[order[0]];
  const weights = order.map((i) => Math.exp((logits[i] - max) / temperature));
  const total = weights.reduce((a, b) => a + b, 0);
  let probs = weights.map((w) => w / total);
  if (options.topP !== undefined && options.topP < 1) {
    let cumulative = 0;
    let keep = 0;
    while (keep < probs.length && cumulative < options.topP) cumulative += probs[keep++];
    order = order.slice(0, keep);
    const kept = probs.slice(0, keep);
    const sum = kept.reduce((a, b) => a + b, 0);
    probs = kept.map((p) => p / sum);
  }
  let r = rng();
  for (let i = 0; i < probs.length; i++) {
    r -= probs[i];
    if (r <= 0) return order[i];
  }
  return order[order.length - 1];
}
