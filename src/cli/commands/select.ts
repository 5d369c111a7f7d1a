// `abliterate select`
import { InvalidArgumentError, type Command } from "commander";
import { common, print, prepare, openModel, int, tokenIdList, selectionFilterOptions, fmt, filtersOf } from "../options.ts";
import { checkDirectionsFit, loadDirections, usableDirections } from "../../pipeline/directions.ts";
import { loadInstructionSource } from "../../data/instructions.ts";
import { filterByRefusalScore, paperCandidates, postInstructionOffsets, scoreCandidates } from "../../pipeline/select.ts";
import { PAPER_KL_EPSILON, PAPER_REFUSAL_EPSILON, refusalTokensFor } from "../../pipeline/scores.ts";

const selectionMode = (value: string) => {
  if (value !== "paper" && value !== "extended") throw new InvalidArgumentError(`expected paper or extended, got "${value}"`);
  return value;
};
import { dataFile } from "../../paths.ts";

export function registerSelect(program: Command): void {
  selectionFilterOptions(common(program.command("select")))
    .description("the paper's selection: bypass, induce and KL scores for every candidate; the lowest bypass that passes the filters wins")
    .option(
      "--mode <mode>",
      "paper: as the paper's code, candidates resid_pre at every post-instruction token, epsilons 1e-8 (refusal score) and 1e-6 " +
        "(KL), the validation sets filtered by refusal score; extended: every direction in the file (every hook), exact scores, " +
        "no filtering (an extension)",
      selectionMode,
      "paper",
    )
    .requiredOption("-d, --directions <file>", "directions .safetensors from `directions`")
    .option("--harmful <file>", "harmful validation instructions", dataFile("harmful", "validation"))
    .option("--harmless <file>", "harmless validation instructions", dataFile("harmless", "validation"))
    .option("-n, --n <n>", "instructions per set", int("--n"), 32)
    .option("--refusal-tokens <ids>", 'comma-separated token ids (default: the model family\'s refusal openings, e.g. "I")', tokenIdList)
    .action(async (opts, command: Command) => {
      const paper = opts.mode === "paper";
      const bar = await prepare(opts);
      const model = await openModel(opts.model, bar);
      try {
        const loaded = await loadDirections(opts.directions);
        checkDirectionsFit(loaded, model, opts.directions);
        const refusalTokens = opts.refusalTokens ?? refusalTokensFor(model);
        const refusalEpsilon =
          paper && command.getOptionValueSource("refusalEpsilon") !== "cli" ? PAPER_REFUSAL_EPSILON : opts.refusalEpsilon;
        let harmful = await loadInstructionSource(opts.harmful, { column: opts.column, limit: opts.n });
        let harmless = await loadInstructionSource(opts.harmless, { column: opts.column, limit: opts.n });
        const notes: string[] = [];
        let directions;
        if (paper) {
          const offsets = postInstructionOffsets(model);
          directions = paperCandidates(loaded, offsets, opts.directions);
          const kept = filterByRefusalScore(
            model,
            { harmful, harmless },
            { refusalTokens, epsilon: refusalEpsilon, batchSize: opts.batchSize },
          );
          [harmful, harmless] = [kept.harmful, kept.harmless];
          notes.push(
            `paper mode: ${directions.length} candidates (resid_pre at the post-instruction token offsets ${offsets.join(", ")}); ` +
              `validation kept ${harmful.length} harmful instructions the model refuses and ${harmless.length} harmless ones it ` +
              `answers (dropped ${kept.dropped.harmful} and ${kept.dropped.harmless})`,
          );
        } else {
          directions = usableDirections(loaded);
          notes.push(`extended mode: every direction of the file (${directions.length} candidates), exact scores`);
        }
        const selection = scoreCandidates(model, directions, harmful, harmless, {
          ...filtersOf(opts),
          exhaustive: opts.exhaustive,
          maxCandidates: opts.maxCandidates,
          refusalTokens,
          refusalEpsilon,
          klEpsilon: paper ? PAPER_KL_EPSILON : 0,
          batchSize: opts.batchSize,
          onProgress: (d, t) => bar.update("selection", d, t),
        });
        bar.stop();
        const rows = selection.candidates.map((c) => ({
          key: c.key,
          bypass: c.bypass,
          induce: c.induce,
          kl: c.kl,
          discarded: c.discarded ?? null,
        }));
        print(
          opts,
          [
            ...notes,
            `baseline refusal score: harmful ${selection.baseline.harmfulRefusalScore.toFixed(2)}, harmless ` +
              `${selection.baseline.harmlessRefusalScore.toFixed(2)}`,
            ...rows.map(
              (r) =>
                `${r.key.padEnd(32)} bypass ${fmt(r.bypass, 2).padStart(7)} induce ${fmt(r.induce, 2).padStart(7)} KL ` +
                `${fmt(r.kl, 4).padStart(6)} ${r.discarded ? `(discarded: ${r.discarded})` : ""}`,
            ),
            `chosen: ${selection.chosen?.key ?? "none passed the filters"} (${selection.passes} prompt passes in ` +
              `${selection.seconds.toFixed(1)} s${
                selection.exhaustive ? ", every candidate scored" : "; --exhaustive scores every " + "candidate"
              })`,
          ].join("\n"),
          {
            mode: opts.mode,
            notes,
            baseline: selection.baseline,
            candidates: rows,
            chosen: selection.chosen?.key ?? null,
            refusalTokens,
            passes: selection.passes,
            seconds: selection.seconds,
          },
        );
      } finally {
        model.dispose();
      }
    });
}
