// `abliterate generate`
import type { Command } from "commander";
import { common, print, prepare, openModel, int, seedValue, nonNegative } from "../options.ts";
import { checkDirectionsFit, pickDirection, loadDirections } from "../../pipeline/directions.ts";
import { directionAblationHooks, withHooks } from "../../interventions.ts";

export function registerGenerate(program: Command): void {
  common(program.command("generate"), false)
    .description("chat-template instructions and generate answers, optionally with a direction ablated")
    .argument("<instructions...>", "one or more instructions")
    .option("--max-new-tokens <n>", "tokens generated per answer", int("--max-new-tokens"), 48)
    .option("-d, --directions <file>", "ablate a direction from this file at every layer and position")
    .option("-k, --key <key>", "which direction in the file")
    .option("--temperature <t>", "0 is greedy", nonNegative("--temperature"), 0)
    .option("--seed <n>", "sampling seed", seedValue, 0)
    .action(async (instructions: string[], opts) => {
      const bar = await prepare(opts);
      const model = await openModel(opts.model, bar);
      try {
        const picked = opts.directions ? pickDirection(await loadDirections(opts.directions), opts.key, opts.directions) : undefined;
        if (picked) checkDirectionsFit([picked], model, opts.directions);
        const ablation = picked ? directionAblationHooks(model, picked.unit) : { fwdHooks: [], dispose: () => {} };
        const { texts } = await withHooks(ablation, (fwdHooks) =>
          model.generate(model.tokenizeInstructions(instructions), {
            maxNewTokens: opts.maxNewTokens,
            fwdHooks,
            temperature: opts.temperature,
            seed: opts.seed,
          }),
        );
        print(
          opts,
          instructions.map((q, i) => `> ${q}\n${texts[i]}`).join("\n\n"),
          instructions.map((instruction, i) => ({ instruction, completion: texts[i] })),
        );
      } finally {
        model.dispose();
      }
    });
}
