// Writes the project's instruction sets to data/ (committed): data/{harmful,harmless}/{train,validation,test}.jsonl,
// one {"text": ..., "category": ...} object a line. Run: npm run data:build
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { allExamples } from "./instructions.ts";

const root = join(import.meta.dirname, "..", "..", "data");
const examples = allExamples();
for (const kind of ["harmful", "harmless"] as const) {
  await mkdir(join(root, kind), { recursive: true });
  for (const split of ["train", "validation", "test"] as const) {
    const rows = examples.filter((e) => e.harmful === (kind === "harmful") && e.split === split);
    await writeFile(join(root, kind, `${split}.jsonl`), rows.map((e) => JSON.stringify({ text: e.text, category: e.category })).join("\n") + "\n");
    console.log(`data/${kind}/${split}.jsonl: ${rows.length}`);
  }
}
