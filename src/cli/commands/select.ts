// `abliterate select`
import type { Command } from "commander";
import { common, print, prepare, openModel, int, tokenIdList, selectionFilterOptions, fmt, filtersOf } from "../options.ts";
import { checkDirectionsFit, loadDirections, usableDirections } from "../../pipeline/directions.ts";
import { loadInstructionSource } from "../../data/instructions.ts";
import { scoreCandidates } from "../../pipeline/select.ts";
import { refusalTokensFor } from "../../pipeline/scores.ts";
import { dataFile } from "../../paths.ts";

export function registerSelect(program: Command): void {
  selectionFilterOptions(common(program.command("select")))
    .description("the paper's selection: bypass, induce and KL scores for every direction; the lowest bypass that passes the filters wins")
    .requiredOption("-d, --directions <file>", "directions .safetensors from `directions`")
    .option("--harmful <file>", "harmful validation instructions", dataFile("harmful", "validation"))
    .option("--harmless <file>", "harmless validation instructions", dataFile("harmless", "validation"))
    .option("-n, --n <n>", "instructions per set", int("--n"), 32)
    .option("--refusal-tokens <ids>", 'comma-separated token ids (default: the model family\'s refusal openings, e.g. "I")', tokenIdList)
    .action(async (opts) => {
      const bar = await prepare(opts);
      const model = await openModel(opts.model, bar);
      try {
        const loaded = await loadDirections(opts.directions);
        checkDirectionsFit(loaded, model, opts.directions);
        const directions = usableDirections(loaded);
        const refusalTokens = opts.refusalTokens ?? refusalTokensFor(model);
        const harmful = await loadInstructionSource(opts.harmful, { column: opts.column, limit: opts.n });
        const harmless = await loadInstructionSource(opts.harmless, { column: opts.column, limit: opts.n });
        const selection = scoreCandidates(model, directions, harmful, harmless, {
          ...filtersOf(opts),
          exhaustive: opts.exhaustive,
          maxCandidates: opts.maxCandidates,
          refusalTokens,
          refusalEpsilon: opts.refusalEpsilon,
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
