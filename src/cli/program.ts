// The `abliterate` command line: `run` for the whole method, one subcommand per stage, each in commands/. main.ts
// runs it.
import { Command } from "commander";
import { registerApply } from "./commands/apply.ts";
import { registerDirections } from "./commands/directions.ts";
import { registerEval } from "./commands/eval.ts";
import { registerExportGguf } from "./commands/export-gguf.ts";
import { registerGenerate } from "./commands/generate.ts";
import { registerHeal } from "./commands/heal.ts";
import { registerRun } from "./commands/run.ts";
import { registerSearch } from "./commands/search.ts";
import { registerSelect } from "./commands/select.ts";

/** The command line with every subcommand registered (the tests read its options). */
export function buildProgram(): Command {
  const program = new Command()
    .name("abliterate")
    .description("Find the refusal direction of a chat model and project it out of the weights (Arditi et al. 2024; Labonne 2024).")
    .showHelpAfterError();
  for (const register of [
    registerRun,
    registerDirections,
    registerSelect,
    registerSearch,
    registerApply,
    registerExportGguf,
    registerHeal,
    registerEval,
    registerGenerate,
  ])
    register(program);
  return program;
}
