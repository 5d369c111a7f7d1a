// Writes the project's instruction sets to data/ (committed): data/{harmful,harmless}/{train,validation,test,heldout}.jsonl,
// one {"text", "category", "form", "verb", "object"} object a line, in a fixed shuffled order (so that the first
// n of a file span many tasks), and the hand-written free-form split (freeform.ts) to
// data/{harmful,harmless}/freeform.jsonl, one {"text", "category", "form": "free"} a line. Run: npm run data:build
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { allExamples, hash, type Split } from "./instructions.ts";
import { FREEFORM_HARMFUL, FREEFORM_HARMLESS } from "./freeform.ts";

const root = join(import.meta.dirname, "..", "..", "data");
const examples = allExamples();
// Splits are by task: no topic (verb + object) of validation, test or held-out is in training, no held-out
// object is, and validation and test share no topic.
for (const harmful of [true, false]) {
  const of = (split: Split) => examples.filter((e) => e.harmful === harmful && e.split === split);
  const topic = (e: (typeof examples)[number]) => `${e.task.verb} ${e.task.object}`;
  const trainTopics = new Set(of("train").map(topic));
  const trainObjects = new Set(of("train").map((e) => e.task.object));
  const validationTopics = new Set(of("validation").map(topic));
  for (const split of ["validation", "test", "heldout"] as Split[]) {
    for (const e of of(split)) {
      if (
        trainTopics.has(topic(e)) ||
        (split === "heldout" && trainObjects.has(e.task.object)) ||
        (split === "test" && validationTopics.has(topic(e)))
      ) {
        throw new Error(`${JSON.stringify(e.text)} (${split}) shares a task with another split`);
      }
    }
  }
}
for (const kind of ["harmful", "harmless"] as const) {
  await mkdir(join(root, kind), { recursive: true });
  for (const split of ["train", "validation", "test", "heldout"] as Split[]) {
    const rows = examples
      .filter((e) => e.harmful === (kind === "harmful") && e.split === split)
      .sort((a, b) => hash(a.text) - hash(b.text));
    await writeFile(
      join(root, kind, `${split}.jsonl`),
      rows
        .map((e) => JSON.stringify({ text: e.text, category: e.category, form: e.task.form, verb: e.task.verb, object: e.task.object }))
        .join("\n") + "\n",
    );
    console.log(`data/${kind}/${split}.jsonl: ${rows.length}`);
  }
}
for (const [kind, requests] of [
  ["harmful", FREEFORM_HARMFUL],
  ["harmless", FREEFORM_HARMLESS],
] as const) {
  const rows = [...requests].sort((a, b) => hash(a.text) - hash(b.text));
  await writeFile(
    join(root, kind, "freeform.jsonl"),
    rows.map((r) => JSON.stringify({ text: r.text, category: r.category, form: "free" })).join("\n") + "\n",
  );
  console.log(`data/${kind}/freeform.jsonl: ${rows.length}`);
}
