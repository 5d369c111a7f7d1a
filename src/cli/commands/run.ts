// `abliterate run`
import type { Command } from "commander";
import { groundTruthStep } from "../../pipeline/ground-truth.ts";
import {
  common,
  verificationLine,
  print,
  prepare,
  int,
  tokenOffsetList,
  tokenIdList,
  substringList,
  selectionFilterOptions,
  filtersOf,
  filterOption,
  outputPath,
  editOptions,
  variantsOf,
  runFormat,
  evaluationSplitSpec,
} from "../options.ts";
import { splitReportLines } from "../../pipeline/evaluate.ts";
import { runPipeline } from "../../pipeline/run.ts";
import { untieNote } from "../../export/peft.ts";

export function registerRun(program: Command): void {
  const command = selectionFilterOptions(common(program.command("run")))
    .description("the whole pipeline: collect, directions, select, evaluate, orthogonalise, export, verify; writes a report")
    .option("-o, --out <dir>", "output folder (model/, directions.safetensors, report.json, report.html)", outputPath, "out")
    .option("--harmful-train <file>")
    .option("--harmless-train <file>")
    .option("--harmful-val <file>")
    .option("--harmless-val <file>")
    .option("--harmful-test <file>")
    .option("--harmless-test <file>")
    .option("--n-train <n>", "instructions per set for the directions (default 256; with --paper 128, as the paper)", int("--n-train"))
    .option("--n-val <n>", "instructions per set for the selection", int("--n-val"), 32)
    .option("--n-test <n>", "instructions per set for evaluation (the test split and each --eval-split)", int("--n-test"), 64)
    .option(
      "--eval-split <name=harmful,harmless>",
      "a further evaluation split, measured before and after like the test split; repeatable (default: the project's " +
        "free-form requests, data/*/freeform.jsonl, when --harmful-test and --harmless-test are not given)",
      evaluationSplitSpec,
    )
    .option("--no-eval-split", "no further evaluation split, not even the default")
    .option("--top-k <n>", "candidates evaluated by generation", int("--top-k"), 3)
    .option("--max-new-tokens <n>", "tokens per answer of the candidates' generations and the export's check", int("--max-new-tokens"), 24)
    .option(
      "--eval-new-tokens <n>",
      "tokens per answer of the final evaluation (before and after, and the compliance reference's answers)",
      int("--eval-new-tokens"),
      128,
    )
    .option("--token-offsets <list>", "token offsets from the end of the prompt, e.g. -1 or -4,-3,-2,-1", tokenOffsetList)
    .option(
      "--paper",
      "the paper's selection as its code: resid_pre candidates at every post-instruction token, instructions filtered by refusal " +
        "score, epsilons 1e-8 and 1e-6, 128 training instructions (default: every hook at --token-offsets, exact scores; an extension)",
    )
    .option(
      "--refusal-tokens <ids>",
      'comma-separated token ids for the refusal score (default: the model family\'s refusal openings, e.g. "I")',
      tokenIdList,
    )
    .option("--refusal-substrings <list>", "|-separated substrings that mark a refusal (default: the paper's list)", substringList)
    .option(...filterOption)
    .option(
      "--compliance-reference <model>",
      "a model that complies with harmful requests (e.g. the source model before safety tuning): coherent compliance is the " +
        "share of harmful test answers after abliteration that begin as its answers (default for the demo model: models/demo-base)",
    )
    .option(
      "--format <format>",
      "safetensors (the checkpoint in <out>/model/) or peft (the same, and the edit as a rank-1 LoRA adapter in <out>/adapter/; " +
        "not with --norm-preserving)",
      runFormat,
      "safetensors",
    )
    .option("-f, --force", "replace a non-empty output model folder");
  // The edit's variants apply to the direction the selection chooses (so no --direction-index here).
  editOptions(command, { directionIndex: false }).action(async (opts) => {
    const bar = await prepare(opts);
    const started = performance.now();
    const report = await runPipeline({
      // The demo's ground truth (a model that ships its planted direction; nothing for any other) joins the report.
      reportSteps: [groundTruthStep],
      complianceReference: opts.complianceReference,
      model: opts.model,
      outDir: opts.out,
      batchSize: opts.batchSize,
      column: opts.column,
      harmfulTrain: opts.harmfulTrain,
      harmlessTrain: opts.harmlessTrain,
      harmfulVal: opts.harmfulVal,
      harmlessVal: opts.harmlessVal,
      harmfulTest: opts.harmfulTest,
      harmlessTest: opts.harmlessTest,
      // Commander: an array when given, false with --no-eval-split, true (the default) otherwise.
      evaluationSplits: opts.evalSplit === false ? [] : opts.evalSplit === true ? undefined : opts.evalSplit,
      nTrain: opts.nTrain,
      nVal: opts.nVal,
      nTest: opts.nTest,
      topK: opts.topK,
      maxNewTokens: opts.maxNewTokens,
      evalNewTokens: opts.evalNewTokens,
      tokenOffsets: opts.tokenOffsets,
      force: opts.force,
      refusalTokens: opts.refusalTokens,
      refusalSubstrings: opts.refusalSubstrings,
      selectionFilters: filtersOf(opts),
      exhaustiveSelection: opts.exhaustive,
      maxCandidates: opts.maxCandidates,
      refusalEpsilon: opts.refusalEpsilon,
      filterByRefusalScore: opts.filterByRefusalScore,
      paperSelection: opts.paper,
      edit: variantsOf(opts),
      adapter: opts.format === "peft",
      onProgress: bar.update,
      log: opts.json ? undefined : (line) => console.error(line),
    });
    bar.stop();
    const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
    if (!report.verify.passed) process.exitCode = 1;
    print(
      opts,
      [
        `chosen direction: layer ${report.chosen.layer}, ${report.chosen.hook} (${report.chosen.key})`,
        `harmful refusal (test, ${report.newTokens.evaluation} new tokens): ${pct(report.before.harmfulRefusalRate)} before -> ` +
          `${pct(report.after.harmfulRefusalRate)} after`,
        `harmless refusal (test): ${pct(report.before.harmlessRefusalRate)} before -> ${pct(report.after.harmlessRefusalRate)} after`,
        ...(report.agreement.coherentCompliance
          ? [
              `coherent compliance (harmful, test): ${pct(report.agreement.coherentCompliance.firstTokens)} of answers begin ` +
                `as the compliant reference's (first ${report.agreement.coherentCompliance.k} tokens), ` +
                `${pct(report.agreement.coherentCompliance.exact)} equal it`,
            ]
          : []),
        `harmless KL (original || abliterated): ${report.after.harmlessKl.toFixed(4)}; harmless answers unchanged: ` +
          `${pct(report.agreement.harmlessUnchanged.exact)}`,
        `harmful answers that mention the request's topic (test): ${pct(report.before.topicMention)} before -> ` +
          `${pct(report.after.topicMention)} after`,
        ...report.splits.flatMap((s) => splitReportLines(s, report.testTokensPerWord)),
        ...(report.planted
          ? [
              `cosine of the chosen direction with the planted one (written at layers ` +
                `${report.planted.unitLayer}-${report.planted.headLayer}): ${report.planted.chosenCosine.toFixed(3)}`,
            ]
          : []),
        ...(report.planted?.explained
          ? [
              `the chosen difference of means: ${pct(report.planted.explained.planted)} along the planted direction, ` +
                `${pct(report.planted.explained.other)} along the model-before-safety-tuning's own harmful/harmless difference, ` +
                `${pct(report.planted.explained.rest)} other (shares of its squared norm)`,
            ]
          : []),
        `exported ${report.exportDir}; ${verificationLine(report.verify)}`,
        ...(report.adapter
          ? [
              `wrote ${report.adapter.outDir}: a rank-1 LoRA adapter on ${report.adapter.modules.length} modules` +
                untieNote(report.adapter),
            ]
          : []),
        `report: ${opts.out}/report.html, ${opts.out}/report.json`,
        `time: ${((performance.now() - started) / 1000).toFixed(0)} s`,
      ].join("\n"),
      report,
    );
  });
}
