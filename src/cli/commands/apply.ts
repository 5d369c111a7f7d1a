// `abliterate apply`
import { InvalidArgumentError, type Command } from "commander";
import {
  common,
  applyFormat,
  GGUF_TYPE_HELP,
  ggufType,
  download,
  editOptions,
  editFromFlags,
  flagsFromRecord,
  flagsFromTrial,
  verificationPrompts,
  verificationLine,
  print,
  outputPath,
} from "../options.ts";
import { progressReporter } from "../progress.ts";
import { ggufCommand } from "./export-gguf.ts";
import { openCheckpoint, loadModel } from "../../load.ts";
import { verifyExport, type Verification } from "../../export/verify.ts";
import { exportAbliterated } from "../../export/safetensors.ts";
import { exportPeftAdapter, untieNote } from "../../export/peft.ts";
import { initBackend } from "../../backend.ts";

const trialNumber = (value: string) => {
  const n = Number(value);
  if (value.trim() === "" || !Number.isInteger(n) || n < 0)
    throw new InvalidArgumentError(`--trial must be a trial number (an integer >= 0), got "${value}"`);
  return n;
};

export function registerApply(program: Command): void {
  const command = common(program.command("apply"), false)
    .description("orthogonalise a checkpoint's weights against a saved direction and export it, one tensor at a time")
    .option("-d, --directions <file>", "directions .safetensors (with --reproduce: default the file the record names)")
    .option(
      "--reproduce <abliterate.json>",
      "make the edit an export's abliterate.json records again (its direction, index, projection, kernels, strengths, norm " +
        "preservation, biprojection), instead of giving them as options",
    )
    .option("--study <study.jsonl>", "with --trial: make the edit of a trial of `abliterate search` (default -m and -d: the study's)")
    .option("--trial <n>", "the trial of --study to export (its number, as the search's front lists it)", trialNumber)
    .option("-k, --key <key>", "which direction, e.g. blocks.3.hook_resid_pre@-1")
    .requiredOption("-o, --out <path>", "output checkpoint folder (or .gguf file with --format gguf)", outputPath)
    .option(
      "--format <format>",
      "safetensors (a Hugging Face checkpoint folder), gguf (one file for llama.cpp, Ollama, LM Studio) or peft (the plain edit as " +
        "a rank-1 LoRA adapter folder; not with --norm-preserving)",
      applyFormat,
      "safetensors",
    )
    .option("--type <type>", `GGUF tensor type: ${GGUF_TYPE_HELP}`, ggufType, "f16");
  editOptions(command)
    .option(
      "--verify",
      "reload the export and compare it with the source under the ablation hooks, or orthogonalised in memory (the model must " +
        "fit in memory); a GGUF file is checked by llama.cpp (needs node-llama-cpp)",
    )
    .option("-f, --force", "replace a non-empty output folder")
    .action(async (opts, command: Command) => {
      // A GGUF type without the GGUF format would be ignored: say so instead of writing safetensors.
      if (opts.format !== "gguf" && command.getOptionValueSource("type") === "cli")
        throw new Error(`--type ${opts.type} is a GGUF tensor type: add --format gguf, or leave --type out for a safetensors export`);
      if ((opts.study === undefined) !== (opts.trial === undefined))
        throw new Error("--study and --trial go together: the trial N of a study FILE");
      if (opts.study && opts.reproduce) throw new Error("--study and --reproduce both say which edit to make: give one");
      let trialRecord: Record<string, unknown> | undefined;
      if (opts.reproduce) Object.assign(opts, await flagsFromRecord(opts.reproduce, opts.directions, command));
      if (opts.study) {
        const { model, trialRecord: found, ...flags } = await flagsFromTrial(opts.study, opts.trial, opts.directions, command);
        Object.assign(opts, flags);
        if (command.getOptionValueSource("model") !== "cli") opts.model = model;
        trialRecord = found;
      }
      if (!opts.directions) throw new Error("required option '-d, --directions <file>' not specified");
      const bar = progressReporter();
      const checkpoint = await openCheckpoint(opts.model, { onDownload: download(bar) });
      let edit;
      try {
        edit = await editFromFlags(opts.directions, opts, {
          nLayers: checkpoint.config.num_hidden_layers,
          dModel: checkpoint.config.hidden_size,
        });
      } catch (error) {
        await checkpoint.close();
        throw error;
      }
      const { direction, orthogonalize } = edit;
      const record = trialRecord ? { ...edit.record, searchTrial: trialRecord } : edit.record;
      if (opts.format === "peft") {
        try {
          if (opts.verify)
            throw new Error("--verify reloads a checkpoint; a LoRA adapter is not one (load it with PEFT onto the source model)");
          const started = performance.now();
          const adapter = await exportPeftAdapter(checkpoint, opts.out, direction.unit, {
            ...orthogonalize,
            force: opts.force,
            provenance: record,
          });
          const seconds = (performance.now() - started) / 1000;
          return print(
            opts,
            `wrote ${adapter.outDir}: a rank-1 LoRA adapter on ${adapter.modules.length} modules (${seconds.toFixed(1)} s)` +
              untieNote(adapter),
            { ...adapter, seconds },
          );
        } finally {
          await checkpoint.close();
        }
      }
      if (opts.format === "gguf") {
        await checkpoint.close();
        return ggufCommand(opts, {
          unit: direction.unit,
          orthogonalize,
          provenance: { direction: direction.label, directions_file: opts.directions },
        });
      }
      const started = performance.now();
      let verification: Verification | undefined;
      let result;
      try {
        result = await exportAbliterated(checkpoint, opts.out, direction.unit, {
          ...orthogonalize,
          force: opts.force,
          provenance: record,
          onNotice: (line) => console.error(line),
          onProgress: (d, t) => bar.update("apply", Math.round(d / 1e6), Math.round(t / 1e6), "MB"),
        });
        bar.stop();
        if (opts.verify) {
          await initBackend({ backend: opts.backend });
          const original = await loadModel(checkpoint);
          try {
            const exported = await loadModel(result.outDir);
            try {
              verification = await verifyExport(original, exported, direction.unit, await verificationPrompts(), { orthogonalize });
            } finally {
              exported.dispose();
            }
          } finally {
            original.dispose();
          }
        }
      } finally {
        await checkpoint.close();
      }
      const seconds = (performance.now() - started) / 1000;
      print(
        opts,
        [
          `wrote ${result.outDir}: ${result.edited.length} tensors orthogonalised, ${result.copied} copied byte for ` +
            `byte${result.untied ? ", embeddings untied" : ""} (${(result.bytesWritten / 1e6).toFixed(0)} MB in ${seconds.toFixed(1)} s)`,
          ...(verification ? [verificationLine(verification)] : []),
        ].join("\n"),
        { ...result, seconds, verification },
      );
      if (verification && !verification.passed) process.exitCode = 1;
    });
}
