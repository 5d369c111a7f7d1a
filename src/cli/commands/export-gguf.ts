// `abliterate export-gguf`
import type { Command } from "commander";
import { common, GGUF_TYPE_HELP, ggufType, download, verificationPrompts, print, type Common, outputPath } from "../options.ts";
import { progressReporter } from "../progress.ts";
import { openCheckpoint, loadModel } from "../../load.ts";
import { initBackend } from "../../backend.ts";
import { exportGguf, GGUF_TYPES, type GgufFileType } from "../../export/gguf/export.ts";
import { type LlamaCppQuant } from "../../export/gguf/quantize.ts";
import { verifyGguf, type GgufVerification } from "../../export/gguf/verify.ts";
import { type OrthogonalizeOptions } from "../../pipeline/orthogonalize.ts";
import { type UnitVector } from "../../projection.ts";

/** `export-gguf` and `apply --format gguf`: write the file, report it, and check it with llama.cpp when asked. */
export async function ggufCommand(
  opts: Common & { out: string; type: GgufFileType | LlamaCppQuant; force?: boolean; verify?: boolean },
  edit: { unit?: UnitVector; orthogonalize?: OrthogonalizeOptions; provenance?: Record<string, string> },
): Promise<void> {
  const bar = progressReporter();
  const checkpoint = await openCheckpoint(opts.model, { onDownload: download(bar) });
  const started = performance.now();
  let result;
  let verification: GgufVerification | undefined;
  try {
    result = await exportGguf(checkpoint, opts.out, {
      ...edit.orthogonalize,
      unit: edit.unit,
      type: opts.type,
      force: opts.force,
      provenance: edit.provenance,
      onProgress: (d, t) => bar.update("gguf", d, t, "tensors"),
    });
    bar.stop();
    if (opts.verify) {
      await initBackend({ backend: opts.backend });
      const source = await loadModel(checkpoint);
      const prompts = await verificationPrompts();
      try {
        verification = await verifyGguf(source, result.file, prompts, {
          type: GGUF_TYPES.includes(opts.type as GgufFileType) ? (opts.type as GgufFileType) : "q8_0",
          unit: edit.unit,
          orthogonalize: edit.orthogonalize,
        });
      } finally {
        source.dispose();
      }
    }
  } finally {
    await checkpoint.close();
  }
  const seconds = (performance.now() - started) / 1000;
  print(
    opts,
    [
      `wrote ${result.file}: ${result.tensors} tensors as ${opts.type}${
        edit.unit ? `, ` + `${result.edited.length} orthogonalised` : ""
      } (${(result.bytes / 1e6).toFixed(1)} MB in ${seconds.toFixed(1)} s)`,
      ...result.notes.map((n) => `note: ${n}`),
      ...(verification
        ? [
            `checked by llama.cpp on ${verification.prompts} prompts against ${verification.reference}: max |log p diff| ` +
              `${verification.maxAbsLogProbDiff.toExponential(2)}${
                verification.tolerance !== undefined ? ` (tolerance ` + `${verification.tolerance})` : ""
              }, greedy tokens agreeing ${(100 * verification.tokenAgreement).toFixed(1)}%, same chat-template tokens: ` +
              `${verification.sameChatTokens}${verification.passed ? "" : " (FAILED)"}`,
          ]
        : []),
    ].join("\n"),
    { ...result, seconds, verification },
  );
  if (verification && !verification.passed) process.exitCode = 1;
}

export function registerExportGguf(program: Command): void {
  common(program.command("export-gguf"), false)
    .description("write a checkpoint (abliterated or not) as one GGUF file for llama.cpp, Ollama and LM Studio, one tensor at a time")
    .requiredOption("-o, --out <file>", "output .gguf file", outputPath)
    .option("--type <type>", `tensor type: ${GGUF_TYPE_HELP}`, ggufType, "f16")
    .option("--verify", "check the file with llama.cpp against the source on a few prompts (needs node-llama-cpp)")
    .option("-f, --force", "replace an existing file")
    .action((opts) => ggufCommand(opts, {}));
}
