// The `abliterate` command: parse the command line and run the subcommand, printing an error as one line.
import { buildProgram } from "./program.ts";

try {
  await buildProgram().parseAsync(process.argv);
} catch (error) {
  console.error(`abliterate: ${(error as Error).message}`);
  process.exitCode = 1;
}
