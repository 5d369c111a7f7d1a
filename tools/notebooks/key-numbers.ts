// The key numbers a notebook run prints (chosen direction, refusal rates), read back from its outputs,
// so that a re-execution can be compared with the outputs committed in the notebooks.
import type { Notebook } from "./runner.ts";

// One or more per notebook: what the reader is told the run found (no timings, no float noise of the last digits).
const KEY_LINES = [
  /^model_type \w+: \d+ layers, .*/, // 01
  /^[\d.]+M parameters held as .*/, // 01
  /^logits \[[\d,]+\]; .*/, // 01
  /^[01]+ \(\d+ tokens\)$/, // 02: left padding
  /^\d+ harmful and \d+ harmless instructions$/, // 03
  /^\d+ candidate directions .*/, // 04
  /^directions ok; .*/, // 04
  /^refusal rate without intervention: .*/, // 05
  /^chosen: .*/, // 05
  /^harmless refusal rate: .*/, // 05
  /^direction blocks\.\S+, norm [\d.]+$/, // 06
  /^cosine of r with the harmless mean: .*/, // 07
  /^mean column norm of .*/, // 07
  /^edit .*: harmful refusal .*/, // 07
  /^wrote \S+: \d+ tensors.*/, // 08
  /^harmful refusal: .*/, // 09
  /^harmless refusal: .*/, // 09
  /^harmless KL\(original \|\| abliterated\): .*/, // 09
  /^harmless answers unchanged: .*/, // 09
  /^coherent compliance \(harmful\): .*/, // 09
  /^freeform split.*/, // 09
  /^baseline refusal score: .*/, // 10
  /^selection \(extended set\): .*/, // 10
  /^paper mode chose .*/, // 10
  /^search: \d+ trials .*/, // 11
  /^reference .*: refusal .*/, // 11
  /^front: \d+ trials.*/, // 11
  /^detectors on trial .*/, // 11
  /^\d+ preference pairs from .*/, // 12
  /^\d+ adapted weights: .*/, // 12
  /^\d+ DPO steps, \d+ epochs?: .*/, // 12
];

export function keyNumbers(notebook: Notebook): string[] {
  const lines: string[] = [];
  for (const cell of notebook.cells) {
    for (const out of cell.outputs ?? []) {
      if (out.output_type !== "stream" || out.name !== "stdout") continue;
      const text = Array.isArray(out.text) ? out.text.join("") : String(out.text);
      // An output path depends on where the run writes (ABLITERATE_NOTEBOOK_OUT): only what was written counts.
      for (const line of text.split("\n")) if (KEY_LINES.some((re) => re.test(line))) lines.push(line.replace(/^wrote \S+: /, "wrote: "));
    }
  }
  return lines;
}
