// `abliterate directions`
import type { Command } from "commander";
import { mkdir } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { checkOutputFiles } from "../../export/targets.ts";
import { common, print, prepare, openModel, int, tokenOffsetList, tokenIdList, filterOption, outputPath } from "../options.ts";
import { directionKey, computeDirections, saveDirections } from "../../pipeline/directions.ts";
import { loadInstructionSource } from "../../data/instructions.ts";
import { filterByRefusalScore, postInstructionOffsets } from "../../pipeline/select.ts";
import { PAPER_REFUSAL_EPSILON, refusalTokensFor } from "../../pipeline/scores.ts";
import { collectMeanActivations } from "../../pipeline/activations.ts";
import { dataFile } from "../../paths.ts";

export function registerDirections(program: Command): void {
  common(program.command("directions"))
    .description("mean(harmful) - mean(harmless) for every layer and resid hook; saved as safetensors")
    .option("--harmful <file>", "harmful instructions", dataFile("harmful", "train"))
    .option("--harmless <file>", "harmless instructions", dataFile("harmless", "train"))
    .option("-n, --n <n>", "instructions per set (default 256; with --paper 128, as the paper)", int("--n"))
    .option("--token-offsets <list>", "token offsets from the end of the prompt (default -1)", tokenOffsetList)
    .option(
      "--paper",
      "as the paper: every post-instruction token of the chat template as a token offset, 128 instructions per set, filtered by " +
        "refusal score (what select's paper mode needs)",
    )
    .option("--projected", "orthogonalise each direction against the harmless mean")
    .option(...filterOption)
    .option(
      "--refusal-tokens <ids>",
      "with --filter-by-refusal-score: comma-separated token ids for the refusal score (default: the model family's refusal openings)",
      tokenIdList,
    )
    .requiredOption("-o, --out <file>", "output .safetensors file", outputPath)
    .option("-f, --force", "replace an existing output file")
    .action(async (opts) => {
      if (opts.paper && opts.tokenOffsets)
        throw new Error("--paper takes the post-instruction tokens as token offsets: leave out --token-offsets");
      opts.n ??= opts.paper ? 128 : 256;
      if (opts.paper) opts.filterByRefusalScore = true;
      // The output is checked before the work: a folder, a link or an existing file (without --force) is refused,
      // and a missing parent folder is made.
      await checkOutputFiles([opts.out], opts.force);
      await mkdir(dirname(resolve(opts.out)), { recursive: true });
      const bar = await prepare(opts);
      const model = await openModel(opts.model, bar);
      try {
        let harmful = await loadInstructionSource(opts.harmful, { column: opts.column, limit: opts.n });
        let harmless = await loadInstructionSource(opts.harmless, { column: opts.column, limit: opts.n });
        const notes: string[] = [];
        opts.tokenOffsets ??= opts.paper ? postInstructionOffsets(model) : [-1];
        if (opts.paper) notes.push(`paper: token offsets ${opts.tokenOffsets.join(", ")} (the chat template's post-instruction tokens)`);
        if (opts.filterByRefusalScore) {
          const kept = filterByRefusalScore(
            model,
            { harmful, harmless },
            {
              refusalTokens: opts.refusalTokens ?? refusalTokensFor(model),
              epsilon: opts.paper ? PAPER_REFUSAL_EPSILON : undefined,
              batchSize: opts.batchSize,
            },
          );
          [harmful, harmless] = [kept.harmful, kept.harmless];
          notes.push(
            `kept ${harmful.length} harmful instructions the model refuses (dropped ${kept.dropped.harmful}) and ` +
              `${harmless.length} harmless ones it answers (dropped ${kept.dropped.harmless})`,
          );
        }
        const a = await collectMeanActivations(model, harmful, {
          batchSize: opts.batchSize,
          tokenOffsets: opts.tokenOffsets,
          onProgress: (d, t, k) => bar.update("activations (harmful)", d, t, k),
        });
        const b = await collectMeanActivations(model, harmless, {
          batchSize: opts.batchSize,
          tokenOffsets: opts.tokenOffsets,
          onProgress: (d, t, k) => bar.update("activations (harmless)", d, t, k),
        });
        const directions = computeDirections(a, b, { projectOutHarmlessMean: opts.projected });
        await saveDirections(opts.out, directions, { model: opts.model }, { overwrite: opts.force });
        bar.stop();
        const rows = directions.map((d) => ({
          key: directionKey(d),
          layer: d.layer,
          hook: d.hook,
          tokenOffset: d.tokenOffset,
          norm: d.norm,
        }));
        print(
          opts,
          [
            ...notes,
            `wrote ${directions.length} directions to ${opts.out}`,
            ...rows.map((r) => `${r.key.padEnd(32)} norm ${r.norm.toFixed(4)}`),
          ].join("\n"),
          rows,
        );
      } finally {
        model.dispose();
      }
    });
}
