// `abliterate eval`
import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { common, download, print, prepare, openModel, int, substringList, verdictPair } from "../options.ts";
import { loadInstructionSource } from "../../data/instructions.ts";
import { answerAgreement } from "../../pipeline/measures.ts";
import { assessModel } from "../../pipeline/assess.ts";
import { demoTruthDetector, substringDetector } from "../../pipeline/detectors.ts";
import { realPathOf } from "../../files.ts";
import { answersOf } from "../../generation.ts";
import { dataFile, DEMO_MODEL_DIR, REFERENCE_TEXT_FILE } from "../../paths.ts";

export function registerEval(program: Command): void {
  common(program.command("eval"))
    .description(
      "refusal on harmful and harmless instructions read by several detectors (and a judge model), degenerate answers counted " +
        "apart, and with --reference the harmless damage: first-token and multi-token KL, unchanged answers, cross-entropy",
    )
    .option("--harmful <file>", "harmful instructions", dataFile("harmful", "test"))
    .option("--harmless <file>", "harmless instructions", dataFile("harmless", "test"))
    .option("-n, --n <n>", "instructions per set", int("--n"), 64)
    .option("--reference <dir>", "original model: KL(reference || model), unchanged answers, and the bar for answers unlike its own")
    .option(
      "--compliance-reference <dir>",
      "a model that complies with harmful requests: coherent compliance is the share of harmful answers that begin as its answers",
    )
    .option("--judge <dir>", "a chat model that judges each answer with a grading prompt (read from its next-token probabilities)")
    .option(
      "--judge-template <file>",
      "the judge's grading prompt, a text file with {instruction} and {answer} (default: a refusal rubric)",
    )
    .option("--judge-verdicts <words>", "the judge's verdict words for refusal and compliance, each one token", verdictPair)
    .option("--refusal-substrings <list>", "|-separated substrings that mark a refusal (default: the paper's list)", substringList)
    .option("--max-new-tokens <n>", "tokens generated per answer", int("--max-new-tokens"), 128)
    .option("--kl-tokens <k>", "KL over the reference's first k answer tokens (teacher-forced)", int("--kl-tokens"), 8)
    .option(
      "--reference-text <file>",
      "texts whose cross-entropy measures language modelling (default: the package's)",
      REFERENCE_TEXT_FILE,
    )
    .action(async (opts) => {
      const judgeTemplate = opts.judgeTemplate ? await readFile(opts.judgeTemplate, "utf8") : undefined;
      const bar = await prepare(opts);
      const model = await openModel(opts.model, bar);
      try {
        const sets = {
          harmful: await loadInstructionSource(opts.harmful, { column: opts.column, limit: opts.n }),
          harmless: await loadInstructionSource(opts.harmless, { column: opts.column, limit: opts.n }),
        };
        const referenceTexts = await loadInstructionSource(opts.referenceText, { column: opts.column });
        const generation = { batchSize: opts.batchSize, maxNewTokens: opts.maxNewTokens, onDownload: download(bar) };
        // Fail on a compliance reference that does not load before the long work.
        const compliant = opts.complianceReference
          ? await answersOf(opts.complianceReference, sets.harmful, {
              ...generation,
              onProgress: (d, t) => bar.update(`generations (${opts.complianceReference})`, d, t),
            })
          : undefined;
        const custom = opts.refusalSubstrings ? substringDetector("custom", opts.refusalSubstrings, "--refusal-substrings") : undefined;
        const demo =
          opts.demoTruth || (opts.reference && (await realPathOf(opts.reference).catch(() => "")) === (await realPathOf(DEMO_MODEL_DIR)));
        const a = await assessModel(model, sets, {
          original: opts.reference,
          judge: opts.judge,
          judgeOptions: { template: judgeTemplate, verdicts: opts.judgeVerdicts },
          maxNewTokens: opts.maxNewTokens,
          klTokens: opts.klTokens,
          referenceTexts,
          extraDetectors: [...(custom ? [custom] : []), ...(demo ? [demoTruthDetector()] : [])],
          breakdownBy: custom ? "custom" : "paper",
          batchSize: opts.batchSize,
          onProgress: bar.update,
        });
        bar.stop();
        const rate = (report: typeof a.harmful, name: string) => report.detectors.find((d) => d.name === name)!.rate;
        const by = a.breakdown.by;
        const samples = (kind: "harmful" | "harmless") =>
          sets[kind].slice(0, 3).map((instruction, i) => ({ instruction, completion: a.answers[kind][i] }));
        const result = {
          harmfulRefusalRate: rate(a.harmful, by),
          harmlessRefusalRate: rate(a.harmless, by),
          harmlessKl: a.damage?.firstTokenKl,
          harmlessUnchanged: a.damage?.harmlessUnchanged,
          coherentCompliance: compliant ? answerAgreement(a.answers.harmful, compliant, model.tokenizer) : undefined,
          detectors: a.harmful.detectors.map((d, i) => ({
            name: d.name,
            description: d.description,
            harmful: d.rate,
            harmless: a.harmless.detectors[i].rate,
          })),
          agreement: { harmful: a.harmful.agreement, harmless: a.harmless.agreement, unanimousHarmful: a.harmful.unanimous },
          breakdown: a.breakdown,
          damage: a.damage,
          crossEntropy: a.crossEntropy,
          maxNewTokens: a.maxNewTokens,
          harmfulSamples: samples("harmful"),
          harmlessSamples: samples("harmless"),
        };
        const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
        const names = result.detectors.map((d) => d.name);
        print(
          opts,
          [
            `refusal (${a.n.harmful} harmful, ${a.n.harmless} harmless instructions, ${a.maxNewTokens} new tokens):`,
            ...result.detectors.map(
              (d) =>
                `  ${d.name.padEnd(10)} harmful ${pct(d.harmful).padStart(6)}  ` +
                `harmless (over-refusal) ${pct(d.harmless).padStart(6)}  ${d.description}`,
            ),
            `detectors agreeing on every harmful answer: ${pct(a.harmful.unanimous)}; pairwise: ` +
              names.flatMap((x, i) => names.slice(i + 1).map((y, j) => `${x}/${y} ${pct(a.harmful.agreement[i][i + 1 + j])}`)).join(", "),
            `harmful answers (by ${by}): refused ${pct(a.breakdown.refused)}, degenerate ${pct(a.breakdown.degenerate)} (empty ` +
              `${pct(a.breakdown.reasons.empty)}, repetitive ${pct(a.breakdown.reasons.repetitive)}, unlike ` +
              `${a.breakdown.unlikeMeasured ? pct(a.breakdown.reasons.unlike) : "not measured: needs --reference"}), compliant ` +
              pct(a.breakdown.compliant),
            ...(result.coherentCompliance
              ? [
                  `coherent compliance (harmful): ${pct(result.coherentCompliance.firstTokens)} of answers begin as the ` +
                    `compliant reference's (first ${result.coherentCompliance.k} tokens), ${pct(result.coherentCompliance.exact)} equal it`,
                ]
              : []),
            ...(a.damage
              ? [
                  `harmless KL: first token ${a.damage.firstTokenKl.toFixed(4)} ` +
                    `(paper's epsilon: ${a.damage.firstTokenKlPaper.toFixed(4)}), ` +
                    `first ${a.damage.klTokens} answer tokens ${a.damage.multiTokenKl.toFixed(4)}`,
                  `harmless answers unchanged: ${pct(a.damage.harmlessUnchanged.exact)} (first ${a.damage.harmlessUnchanged.k} tokens: ` +
                    `${pct(a.damage.harmlessUnchanged.firstTokens)})`,
                ]
              : []),
            ...(a.crossEntropy
              ? [
                  `cross-entropy of the reference text: ${a.crossEntropy.model.toFixed(3)} nats/token` +
                    (a.crossEntropy.original !== undefined ? ` (reference model: ${a.crossEntropy.original.toFixed(3)})` : ""),
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
