// Stage 6's check of a GGUF export, by llama.cpp itself: on a few prompts, llama.cpp's next-token
// log-probabilities and greedy answers from the file against the engine's from the source checkpoint
// (under the same intervention the export made, as for the safetensors export), and llama.cpp's rendering
// of the chat template stored in the file against the engine's.
import type { HookedModel } from "../../hooked-model.ts";
import type { UnitVector } from "../../projection.ts";
import { promptBatches, type Prompts } from "../../batches.ts";
import { lastPositionLogits } from "../../generation.ts";
import type { OrthogonalizeOptions } from "../../pipeline/orthogonalize.ts";
import { logSoftmax } from "../../pipeline/scores.ts";
import { expectedExport, greedyAnswers, maxAbsDifference, type Verification } from "../verify.ts";
import { activationName } from "../../config.ts";
import { llamaCppChatTokens, llamaCppGreedy, llamaCppLogProbs, loadGguf } from "./llama-cpp.ts";
import type { GgufFileType } from "./export.ts";

/**
 * Largest |log-probability difference| accepted for a float32 file: llama.cpp's float32 arithmetic agrees with
 * the engine's to about 1e-5 (measured on every reference architecture), except that its CPU GELU rounds
 * input and output to float16 (ggml-cpu's GELU table), which moves Gemma's log-probabilities by up to ~6e-3.
 */
export const GGUF_LOGPROB_TOLERANCE = { exact: 1e-3, gelu: 2e-2 };
/** Share of greedy answer tokens that must agree (up to the first difference) for a rounded file (Q8_0, BF16). */
export const GGUF_MIN_TOKEN_AGREEMENT = 0.9;

export interface GgufVerification {
  file: string;
  type: GgufFileType;
  /** What the file was compared with. */
  reference: Verification["reference"] | "the source model";
  prompts: number;
  /** Largest |log p(llama.cpp) - log p(engine)| of the next token, over the vocabulary and the prompts. */
  maxAbsLogProbDiff: number;
  /** Whether llama.cpp's greedy answers equal the engine's, token for token. */
  sameGreedyAnswers: boolean;
  /** Share of the engine's greedy answer tokens that llama.cpp reproduces before its first different token. */
  tokenAgreement: number;
  /** Whether llama.cpp, rendering the file's chat template, gives the engine's token ids for the first prompt. */
  sameChatTokens: boolean;
  /** The log-probability tolerance applied (float32 files only). */
  tolerance?: number;
  passed: boolean;
}

export interface GgufVerifyOptions {
  type: GgufFileType;
  /** The direction the file was orthogonalised against, and the options it was made with. */
  unit?: UnitVector;
  orthogonalize?: OrthogonalizeOptions;
  maxNewTokens?: number;
}

/** Check the GGUF file `file`, written from `source` (held in memory), with llama.cpp on `prompts` (instructions). */
export async function verifyGguf(
  source: HookedModel,
  file: string,
  prompts: readonly string[],
  options: GgufVerifyOptions,
): Promise<GgufVerification> {
  if (prompts.length === 0) throw new Error("verifyGguf: no prompts");
  const maxNewTokens = options.maxNewTokens ?? 16;
  const expected = options.unit
    ? await expectedExport(source, options.unit, prompts, { orthogonalize: options.orthogonalize, maxNewTokens })
    : {
        reference: "the source model" as const,
        logits: lastPositionLogits(source, prompts),
        ...(await greedyAnswers(source, prompts, { maxNewTokens, batchSize: 8 })),
      };
  const ids = promptIds(source, prompts);
  const model = await loadGguf(file);
  try {
    let maxAbsLogProbDiff = 0;
    let agreed = 0;
    let total = 0;
    let same = true;
    for (const [i, tokens] of ids.entries()) {
      const theirs = await llamaCppLogProbs(model, tokens, source.config.vocab_size);
      const ours = logSoftmax(expected.logits[i]);
      maxAbsLogProbDiff = Math.max(maxAbsLogProbDiff, maxAbsDifference([theirs], [ours]));
      const answer = await llamaCppGreedy(model, tokens, maxNewTokens);
      const want = expected.answerTokens[i];
      let prefix = 0;
      while (prefix < want.length && prefix < answer.length && want[prefix] === answer[prefix]) prefix++;
      agreed += prefix;
      total += Math.max(want.length, answer.length);
      same &&= prefix === want.length && prefix === answer.length;
    }
    const sameChatTokens = JSON.stringify(await llamaCppChatTokens(model, prompts[0])) === JSON.stringify(ids[0]);
    const tokenAgreement = total === 0 ? 1 : agreed / total;
    const tolerance = options.type === "f32" ? (!usesGelu(source) ? GGUF_LOGPROB_TOLERANCE.exact : GGUF_LOGPROB_TOLERANCE.gelu) : undefined;
    const passed =
      sameChatTokens &&
      (options.type === "f32"
        ? maxAbsLogProbDiff <= tolerance! && same
        : options.type === "f16"
          ? same
          : tokenAgreement >= GGUF_MIN_TOKEN_AGREEMENT);
    return {
      file,
      type: options.type,
      reference: expected.reference,
      prompts: prompts.length,
      maxAbsLogProbDiff,
      sameGreedyAnswers: same,
      tokenAgreement,
      sameChatTokens,
      tolerance,
      passed,
    };
  } finally {
    await model.dispose();
  }
}

/** Whether the model's MLP activation is a GELU (computed through llama.cpp's float16 table). */
function usesGelu(model: HookedModel): boolean {
  return activationName(model.config).startsWith("gelu");
}

/** The token ids the engine runs for each instruction (chat template applied), padding removed. */
function promptIds(model: HookedModel, prompts: Prompts): number[][] {
  const out: number[][] = [];
  for (const { batch } of promptBatches(model, prompts, 8)) {
    for (const [b, row] of batch.inputIds.entries()) out.push(row.filter((_, t) => batch.attentionMask[b][t]));
  }
  return out;
}
