// `abliterate heal`
import type { Command } from "commander";
import { fraction, print, int, positive, seedValue, outputPath } from "../options.ts";
import { progressReporter } from "../progress.ts";
import { initBackend } from "../../backend.ts";
import { DEMO_MODEL_DIR } from "../../paths.ts";
import { runHealing } from "../../heal/run.ts";
import { trainingSummary } from "../../heal/train.ts";
import { join } from "node:path";

export function registerHeal(program: Command): void {
  program
    .command("heal")
    .description(
      "heal an abliterated model as the blog does: DPO on LoRA adapters against itself, merged and exported; before/after on the " +
        "test split",
    )
    .option("-m, --model <dir>", "the abliterated model", "out/model")
    .option(
      "--original <dir>",
      "the model before abliteration (harmless KL and unchanged answers are measured against it; the demo's pairs are sampled from it)",
      DEMO_MODEL_DIR,
    )
    .option(
      "--pairs <source>",
      "preference pairs: .jsonl/.json/.parquet with prompt/chosen/rejected strings or chosen/rejected message lists, or a Hub " +
        "dataset org/name:split (default: sampled from the original and abliterated models on data/harmless/train.jsonl)",
    )
    .option("--n-pairs <n>", "pairs read from --pairs (the first ones)", int("--n-pairs"))
    .option("--n-instructions <n>", "harmless training instructions the default pairs are sampled from", int("--n-instructions"), 256)
    .option("--n-test <n>", "test instructions of each kind", int("--n-test"), 64)
    .option("--rank <n>", "LoRA rank (the blog: 64)", int("--rank"), 64)
    .option("--alpha <x>", "LoRA alpha (the blog: 32)", positive("--alpha"), 32)
    .option("--dropout <p>", "LoRA dropout (the blog: 0.05)", fraction, 0.05)
    .option("--beta <x>", "DPO beta", positive("--beta"), 0.1)
    .option("--lr <x>", "peak learning rate (the blog: 5e-6 on an 8B model)", positive("--lr"), 5e-6)
    .option("--epochs <n>", "passes over the pairs", int("--epochs"), 1)
    .option("--micro-batch <n>", "pairs per forward pass", int("--micro-batch"), 8)
    .option("--grad-accum <n>", "forward passes per optimizer step", int("--grad-accum"), 1)
    .option("--warmup <fraction>", "share of the steps warming the learning rate up", fraction, 0.1)
    .option("--seed <n>", "seed of the adapters, the pair order, dropout and the sampled pairs", seedValue, 0)
    .option("--max-new-tokens <n>", "tokens generated per answer", int("--max-new-tokens"), 24)
    .option("--compliance-reference <dir>", "a model that complies with harmful requests (default for the demo: models/demo-base)")
    .option("-o, --out <dir>", "output folder: healed/, pairs.jsonl, axolotl.yaml, heal.json, heal.html", outputPath, "out/heal")
    .option("-f, --force", "replace a non-empty healed/ folder")
    .option("--backend <name>", "tensor backend: node-gpu, node, wasm or cpu (default: the fastest that loads)")
    .option("--json", "print the report as JSON on stdout, for scripts")
    .action(async (opts) => {
      await initBackend({ backend: opts.backend });
      const bar = progressReporter();
      const report = await runHealing({
        model: opts.model,
        original: opts.original,
        pairs: opts.pairs,
        nPairs: opts.nPairs,
        nInstructions: opts.nInstructions,
        nTest: opts.nTest,
        rank: opts.rank,
        alpha: opts.alpha,
        dropout: opts.dropout,
        beta: opts.beta,
        learningRate: opts.lr,
        epochs: opts.epochs,
        batchSize: opts.microBatch,
        gradientAccumulation: opts.gradAccum,
        warmupRatio: opts.warmup,
        seed: opts.seed,
        maxNewTokens: opts.maxNewTokens,
        complianceReference: opts.complianceReference,
        out: opts.out,
        force: opts.force,
        onProgress: (stage, d, t) => bar.update(stage, d, t),
      });
      bar.stop();
      const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
      print(
        opts,
        [
          `${report.pairs.n} preference pairs (${report.pairs.source}); ${trainingSummary(report.history)}`,
          `harmful refusal (test): ${pct(report.before.harmfulRefusal)} before healing -> ${pct(report.after.harmfulRefusal)} after`,
          `harmless KL (original || model): ${report.before.harmlessKl.toFixed(4)} -> ${report.after.harmlessKl.toFixed(4)}`,
          `harmless answers unchanged: ${pct(report.before.harmlessUnchanged.exact)} -> ${pct(report.after.harmlessUnchanged.exact)}`,
          ...(report.before.coherentCompliance
            ? [
                `coherent compliance (harmful): ${pct(report.before.coherentCompliance.firstTokens)} -> ` +
                  `${pct(report.after.coherentCompliance!.firstTokens)}`,
              ]
            : []),
          `exported ${report.exportDir} (reloaded: max |logit diff| ${report.exportCheck.toExponential(2)} against the model ` +
            `with its adapters); report ${join(opts.out, "heal.html")}; Axolotl config for a real model ${join(opts.out, "axolotl.yaml")}`,
          `time: ${report.seconds.toFixed(0)} s`,
        ].join("\n"),
        report,
      );
    });
}
