// `abliterate eval`
import type { Command } from "commander";
import { common, download, print, prepare, openModel, int, substringList } from "../options.ts";
import { loadInstructionSource } from "../../data/instructions.ts";
import { measure } from "../../pipeline/evaluate.ts";
import { answersOf, generateCompletions, lastPositionLogits } from "../../generation.ts";
import { dataFile } from "../../paths.ts";

export function registerEval(program: Command): void {
  common(program.command("eval"))
    .description("refusal rate (substring metric) on harmful and harmless instructions, optionally KL against a reference model")
    .option("--harmful <file>", "harmful instructions", dataFile("harmful", "test"))
    .option("--harmless <file>", "harmless instructions", dataFile("harmless", "test"))
    .option("-n, --n <n>", "instructions per set", int("--n"), 64)
    .option("--reference <dir>", "original model, for KL(reference || model) and unchanged answers on the harmless instructions")
    .option(
      "--compliance-reference <dir>",
      "a model that complies with harmful requests: coherent compliance is the share of harmful answers that begin as its answers",
    )
    .option("--refusal-substrings <list>", "|-separated substrings that mark a refusal (default: the paper's list)", substringList)
    .option("--max-new-tokens <n>", "tokens generated per answer", int("--max-new-tokens"), 24)
    .action(async (opts) => {
      const bar = await prepare(opts);
      const model = await openModel(opts.model, bar);
      try {
        const sets = {
          harmful: await loadInstructionSource(opts.harmful, { column: opts.column, limit: opts.n }),
          harmless: await loadInstructionSource(opts.harmless, { column: opts.column, limit: opts.n }),
        };
        const generation = { batchSize: opts.batchSize, maxNewTokens: opts.maxNewTokens, onDownload: download(bar) };
        // Other models' answers and logits to the same prompts, with only one extra model in memory at a time.
        let original: { answers: string[]; logits: Float32Array[] } | undefined;
        if (opts.reference) {
          const reference = await openModel(opts.reference, bar);
          try {
            const answers = await generateCompletions(reference, sets.harmless, {
              ...generation,
              onProgress: (d, t) => bar.update(`generations (${opts.reference})`, d, t),
            });
            original = { answers, logits: lastPositionLogits(reference, sets.harmless, { batchSize: opts.batchSize }) };
          } finally {
            reference.dispose();
          }
        }
        const compliant = opts.complianceReference
          ? await answersOf(opts.complianceReference, sets.harmful, {
              ...generation,
              onProgress: (d, t) => bar.update(`generations (${opts.complianceReference})`, d, t),
            })
          : undefined;
        const measured = await measure(model, sets, {
          ...generation,
          original,
          compliant,
          refusalSubstrings: opts.refusalSubstrings,
          onProgress: bar.update,
        });
        bar.stop();
        const samples = (kind: "harmful" | "harmless") =>
          sets[kind].slice(0, 3).map((instruction, i) => ({ instruction, completion: measured.answers[kind][i] }));
        const result = {
          harmfulRefusalRate: measured.harmfulRefusal,
          harmlessRefusalRate: measured.harmlessRefusal,
          harmlessKl: measured.harmlessKl,
          harmlessUnchanged: measured.harmlessUnchanged,
          coherentCompliance: measured.coherentCompliance,
          harmfulSamples: samples("harmful"),
          harmlessSamples: samples("harmless"),
        };
        const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
        print(
          opts,
          [
            `harmful refusal rate: ${pct(result.harmfulRefusalRate)}`,
            ...(result.coherentCompliance
              ? [
                  `coherent compliance (harmful): ${pct(result.coherentCompliance.firstTokens)} of answers begin as the ` +
                    `compliant reference's (first ${result.coherentCompliance.k} tokens), ${pct(result.coherentCompliance.exact)} equal it`,
                ]
              : []),
            `harmless refusal rate: ${pct(result.harmlessRefusalRate)}`,
            ...(result.harmlessKl !== undefined ? [`harmless KL: ${result.harmlessKl.toFixed(4)}`] : []),
            ...(result.harmlessUnchanged
              ? [
                  `harmless answers unchanged: ${pct(result.harmlessUnchanged.exact)} (first ${result.harmlessUnchanged.k} tokens: ` +
                    `${pct(result.harmlessUnchanged.firstTokens)})`,
                ]
              : []),
          ].join("\n"),
          result,
        );
      } finally {
        model.dispose();
      }
    });
}
