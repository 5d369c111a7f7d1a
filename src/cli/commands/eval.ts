// `abliterate eval`
import type { Command } from "commander";
import { common, print, prepare, openModel, int, substringList } from "../options.ts";
import { loadInstructionSource } from "../../data/instructions.ts";
import { generateCompletions, evaluateRefusal, answerAgreement } from "../../pipeline/evaluate.ts";
import { dataFile } from "../../paths.ts";

export function registerEval(program: Command): void {
  common(program.command("eval"))
    .description("refusal rate (substring metric) on harmful and harmless instructions, optionally KL against a reference model")
    .option("--harmful <file>", "harmful instructions", dataFile("harmful", "test"))
    .option("--harmless <file>", "harmless instructions", dataFile("harmless", "test"))
    .option("-n, --n <n>", "instructions per set", int("--n"), 64)
    .option("--reference <dir>", "original model, for KL(reference || model) and unchanged answers on the harmless instructions")
    .option("--compliance-reference <dir>", "a model that complies with harmful requests: coherent compliance is the share of harmful answers that begin as its answers")
    .option("--refusal-substrings <list>", "|-separated substrings that mark a refusal (default: the paper's list)", substringList)
    .option("--max-new-tokens <n>", "tokens generated per answer", int("--max-new-tokens"), 24)
    .action(async (opts) => {
      const bar = await prepare(opts);
      const model = await openModel(opts.model, bar);
      try {
        const sets = { harmful: await loadInstructionSource(opts.harmful, { column: opts.column, limit: opts.n }), harmless: await loadInstructionSource(opts.harmless, { column: opts.column, limit: opts.n }) };
        const generation = { batchSize: opts.batchSize, maxNewTokens: opts.maxNewTokens };
        // Answers of another model to the same prompts, with only one extra model in memory at a time.
        const answersOf = async (dir: string, prompts: string[]) => {
          const other = await openModel(dir, bar);
          try {
            return { other, answers: await generateCompletions(other, prompts, { ...generation, onProgress: (d, t) => bar.update(`generations (${dir})`, d, t) }) };
          } catch (error) {
            other.dispose();
            throw error;
          }
        };
        const referenced = opts.reference ? await answersOf(opts.reference, sets.harmless) : undefined;
        let evaluation: Awaited<ReturnType<typeof evaluateRefusal>>;
        try {
          evaluation = await evaluateRefusal(model, sets, { ...generation, reference: referenced?.other, refusalSubstrings: opts.refusalSubstrings, onProgress: bar.update });
        } finally {
          referenced?.other.dispose();
        }
        const compliant = opts.complianceReference ? await answersOf(opts.complianceReference, sets.harmful) : undefined;
        compliant?.other.dispose();
        bar.stop();
        const samples = (kind: "harmful" | "harmless") => sets[kind].slice(0, 3).map((instruction, i) => ({ instruction, completion: evaluation.completions[kind][i] }));
        const result = {
          harmfulRefusalRate: evaluation.harmfulRefusalRate, harmlessRefusalRate: evaluation.harmlessRefusalRate, harmlessKl: evaluation.harmlessKl,
          harmlessUnchanged: referenced && answerAgreement(evaluation.completions.harmless, referenced.answers, model.tokenizer),
          coherentCompliance: compliant && answerAgreement(evaluation.completions.harmful, compliant.answers, model.tokenizer),
          harmfulSamples: samples("harmful"), harmlessSamples: samples("harmless"),
        };
        const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
        print(opts, [
          `harmful refusal rate: ${pct(result.harmfulRefusalRate)}`,
          ...(result.coherentCompliance ? [`coherent compliance (harmful): ${pct(result.coherentCompliance.firstTokens)} of answers begin as the compliant reference's (first ${result.coherentCompliance.k} tokens), ${pct(result.coherentCompliance.exact)} equal it`] : []),
          `harmless refusal rate: ${pct(result.harmlessRefusalRate)}`,
          ...(result.harmlessKl !== undefined ? [`harmless KL: ${result.harmlessKl.toFixed(4)}`] : []),
          ...(result.harmlessUnchanged ? [`harmless answers unchanged: ${pct(result.harmlessUnchanged.exact)} (first ${result.harmlessUnchanged.k} tokens: ${pct(result.harmlessUnchanged.firstTokens)})`] : []),
        ].join("\n"), result);
      } finally {
        model.dispose();
      }
    });
}
