// The key numbers a notebook run prints (chosen direction, refusal rates), read back from its outputs,
// so that a re-execution can be compared with the outputs committed in the notebooks.
import type { Notebook } from "./runner.ts";

const KEY_LINES = [
  /^chosen: .*/,
  /^paper's selection: .*/,
  /^harmful refusal: .*/,
  /^harmless refusal: .*/,
  /^refusal rate without intervention: .*/,
];

export function keyNumbers(notebook: Notebook): string[] {
  const lines: string[] = [];
  for (const cell of notebook.cells) {
    for (const out of cell.outputs ?? []) {
      if (out.output_type !== "stream" || out.name !== "stdout") continue;
      const text = Array.isArray(out.text) ? out.text.join("") : String(out.text);
      for (const line of text.split("\n")) if (KEY_LINES.some((re) => re.test(line))) lines.push(line);
    }
  }
  return lines;
}
