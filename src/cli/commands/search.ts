// `abliterate search`
import { existsSync } from "node:fs";
import { lstat, mkdir, readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { InvalidArgumentError, type Command } from "commander";
import { common, prepare, openModel, int, print, seedValue, substringList, outputPath, verdictPair } from "../options.ts";
import { judgeDetector, keywordDetectors } from "../../pipeline/detectors.ts";
import { checkDirectionsFit, loadDirections } from "../../pipeline/directions.ts";
import { loadInstructionSource } from "../../data/instructions.ts";
import { dataFile } from "../../paths.ts";
import { editSearchSpace, searchEdits } from "../../search/search.ts";
import { frontRows } from "../../search/table.ts";
import { writeSearchHtml } from "../../report/html.ts";
import { paretoFigure } from "../../report/plots.ts";
import { figureSvg } from "../../report/static-svg.ts";
import { withLock, writeFileAtomic } from "../../files.ts";

const OUTPUTS = { study: "study.jsonl", html: "search.html", svg: "pareto.svg" } as const;

const nonNegativeInt = (name: string) => (value: string) => {
  const n = Number(value);
  if (value.trim() === "" || !Number.isInteger(n) || n < 0)
    throw new InvalidArgumentError(`${name} must be an integer >= 0, got "${value}"`);
  return n;
};
const tokenOffset = (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n >= 0)
    throw new InvalidArgumentError(`--token-offset must be a negative integer (-1: the last token), got "${value}"`);
  return n;
};
const detectorName = (value: string) => {
  if (!["paper", "blog", "keywords"].includes(value)) throw new InvalidArgumentError(`expected paper, blog or keywords, got "${value}"`);
  return value;
};
const kernelRanges = (value: string) => {
  if (value !== "whole" && value !== "heretic") throw new InvalidArgumentError(`expected whole or heretic, got "${value}"`);
  return value;
};

export function registerSearch(program: Command): void {
  common(program.command("search"))
    .description(
      "search the edit's parameters (direction index and hook, strength kernels, projection, norm preservation) with a seeded " +
        "TPE sampler, minimising harmful refusals and harmless KL together; writes the study, its Pareto front and a page",
    )
    .requiredOption("-d, --directions <file>", "directions .safetensors from `directions` (with the harmless means)")
    .requiredOption("-o, --out <dir>", "folder for study.jsonl, search.html and pareto.svg", outputPath)
    .option("--trials <n>", "trials in the study", int("--trials"), 40)
    .option("--seed <n>", "seed of the sampler", seedValue, 0)
    .option("--startup-trials <n>", "random trials before TPE (Optuna's default)", nonNegativeInt("--startup-trials"), 10)
    .option("--resume", "go on with the study in --out (its settings must match these)")
    .option("--harmful <file>", "harmful prompts the refusals are counted on", dataFile("harmful", "validation"))
    .option("--harmless <file>", "harmless prompts the KL is measured on", dataFile("harmless", "validation"))
    .option("--n-harmful <n>", "harmful prompts per trial", int("--n-harmful"), 32)
    .option("--n-harmless <n>", "harmless prompts per trial", int("--n-harmless"), 32)
    .option("--max-new-tokens <n>", "tokens generated per harmful prompt to look for a refusal in", int("--max-new-tokens"), 32)
    .option("--kl-tokens <k>", "KL over the original's first k answer tokens (teacher-forced); 1: the first token", int("--kl-tokens"), 1)
    .option("--token-offset <n>", "token offset of the directions searched", tokenOffset, -1)
    .option(
      "--kernel-ranges <which>",
      "whole (kernel peaks anywhere in the model, reaching up to its depth) or heretic (its ranges, made for deep models)",
      kernelRanges,
      "whole",
    )
    .option("--no-norm-preserving", "leave norm preservation off instead of searching it")
    .option("--reference <key...>", "directions to measure fully edited beside the trials (e.g. the one `select` chose)")
    .option("--refusal-substrings <list>", "|-separated substrings that mark a refusal (default: the paper's list)", substringList)
    .option(
      "--detector <name>",
      "count refusals with paper (the paper's substrings), blog (its blacklist) or keywords (a broader list)",
      detectorName,
      "paper",
    )
    .option("--judge <dir>", "count refusals with a chat model as judge instead (loaded beside the model searched)")
    .option(
      "--judge-template <file>",
      "the judge's grading prompt, a text file with {instruction} and {answer} (default: a refusal rubric)",
    )
    .option("--judge-verdicts <words>", "the judge's verdict words for refusal and compliance, each one token", verdictPair)
    .action(async (opts, command: Command) => {
      const out = resolve(opts.out);
      const found = await lstat(out).catch(() => undefined);
      if (found && !found.isDirectory())
        throw new Error(
          `${opts.out} is ${found.isSymbolicLink() ? "a link" : "a file"}; the search writes a folder there ` +
            `(study.jsonl, search.html, pareto.svg)`,
        );
      const paths = Object.fromEntries(Object.entries(OUTPUTS).map(([k, name]) => [k, join(out, name)])) as Record<
        keyof typeof OUTPUTS,
        string
      >;
      for (const path of Object.values(paths)) {
        const found = await lstat(path).catch(() => undefined);
        if (found && !found.isFile())
          throw new Error(
            `${path} is ${found.isSymbolicLink() ? "a link" : "not a file"}; the search writes a file there: choose another folder`,
          );
      }
      const studyExists = (await lstat(paths.study).catch(() => undefined)) !== undefined;
      if (opts.resume && !studyExists)
        throw new Error(`--resume: ${paths.study} does not exist; leave out --resume to start a study there`);
      if (!opts.resume) {
        const taken = [];
        for (const path of Object.values(paths)) if (await lstat(path).catch(() => undefined)) taken.push(path);
        if (taken.length > 0)
          throw new Error(
            `${taken.join(", ")} already exist${taken.length === 1 ? "s" : ""}: --resume goes on with that study; or choose another folder`,
          );
      }
      if (opts.resume) {
        // Fail early, before loading anything, on a file that is not a study.
        const first = (await readFile(paths.study, "utf8")).split("\n")[0];
        if (!first.includes('"abliterate-study"')) throw new Error(`${paths.study}: not a study file written by abliterate search`);
      }
      if (opts.refusalSubstrings && (opts.judge || command.getOptionValueSource("detector") === "cli"))
        throw new Error("--refusal-substrings is a detector of its own: leave out --detector and --judge, or the substrings");
      const judgeTemplate = opts.judgeTemplate ? await readFile(opts.judgeTemplate, "utf8") : undefined;
      const bar = await prepare(opts);
      const model = await openModel(opts.model, bar);
      const judge = opts.judge ? await openModel(opts.judge, bar).catch((error) => (model.dispose(), Promise.reject(error))) : undefined;
      try {
        const detector = judge
          ? judgeDetector(judge, { template: judgeTemplate, verdicts: opts.judgeVerdicts, batchSize: opts.batchSize })
          : opts.refusalSubstrings
            ? undefined
            : keywordDetectors().find((d) => d.name === opts.detector)!;
        const directions = await loadDirections(opts.directions);
        checkDirectionsFit(directions, model, opts.directions);
        const harmful = await loadInstructionSource(opts.harmful, { column: opts.column, limit: opts.nHarmful });
        const harmless = await loadInstructionSource(opts.harmless, { column: opts.column, limit: opts.nHarmless });
        await mkdir(out, { recursive: true });
        const study = await withLock(
          join(out, ".search.lock"),
          () =>
            searchEdits(model, directions, {
              trials: opts.trials,
              seed: opts.seed,
              startupTrials: opts.startupTrials,
              harmful,
              harmless,
              // Absolute, so that `apply --study` finds them from any folder (a Hub id stays as it is).
              directionsFile: resolve(opts.directions),
              model: existsSync(opts.model) ? resolve(opts.model) : opts.model,
              tokenOffset: opts.tokenOffset,
              space: editSearchSpace(directions, model.nLayers, {
                tokenOffset: opts.tokenOffset,
                normPreserving: opts.normPreserving,
                kernelRanges: opts.kernelRanges,
              }),
              maxNewTokens: opts.maxNewTokens,
              klTokens: opts.klTokens,
              refusalSubstrings: opts.refusalSubstrings,
              // The paper's substrings are the default measure itself: a study records it as "paper" either way.
              detector: detector?.name === "paper" ? undefined : detector,
              batchSize: opts.batchSize,
              study: paths.study,
              references: (opts.reference ?? []).map((key: string) => ({ label: key, key })),
              onProgress: (stage, done, total) => bar.update(stage, done, total),
              onTrial: (t) =>
                bar.update(
                  "trials",
                  t.trial + 1,
                  opts.trials,
                  `trial ${t.trial}: refusal ${(100 * t.refusal).toFixed(1)}%, KL ${t.kl.toFixed(4)}`,
                ),
            }),
          { busy: (pid) => `another search (process ${pid}) is writing ${paths.study}` },
        );
        bar.stop();
        await writeSearchHtml(paths.html, study, study.front, { studyFile: paths.study });
        await writeFileAtomic(paths.svg, figureSvg(paretoFigure(study.trials, study.front, study.baseline, study.references)));
        const rows = frontRows(study, study.front);
        const pct = (x: number) => `${(100 * x).toFixed(1)}%`.padStart(6);
        print(
          opts,
          [
            `${study.trials.length} trials in ${paths.study}; without intervention: refusal ${pct(study.baseline!.refusal).trim()}`,
            ...study.references.map((r) => `reference ${r.key}: refusal ${pct(r.refusal).trim()}, KL ${r.kl.toFixed(4)}`),
            `Pareto front (export one with: abliterate apply --study ${paths.study} --trial N -o OUT):`,
            ...rows.map((r) => `  trial ${String(r.trial).padStart(3)}  refusal ${pct(r.refusal)}  KL ${r.kl.toFixed(4)}  ${r.edit}`),
            `wrote ${paths.html} and ${paths.svg}`,
          ].join("\n"),
          { study: paths.study, baseline: study.baseline, references: study.references, front: rows, trials: study.trials },
        );
      } finally {
        judge?.dispose();
        model.dispose();
      }
    });
}
