// npm run backend:tfjs-node [-- --wheel PATH] [-- --package node-gpu] [-- --force]: builds
// @tensorflow/tfjs-node's binding offline from a TensorFlow wheel (tools/tfjs-node.ts says how). On a machine
// with internet the ordinary `npm install` fetches libtensorflow itself and this is not needed.
//
// Exit status: 0 when the package loads afterwards (built now, or already working), 2 when it was skipped for a
// reason that is not an error (no wheel on this machine, a platform the wheel route does not cover), 1 on a
// failure.
import { Command } from "commander";
import { installFromWheel, NPM_NAME, say, Skipped, type BindingPackage } from "../../tools/tfjs-node.ts";

{
  const program = new Command("backend:tfjs-node")
    .description("build @tensorflow/tfjs-node's binding offline from a TensorFlow wheel")
    .option("--wheel <path>", "the TensorFlow wheel (default: ABLITERATE_TF_WHEEL, else the newest in pip's local mirror)")
    .option("--package <name>", "node (@tensorflow/tfjs-node) or node-gpu (@tensorflow/tfjs-node-gpu)", "node")
    .option("--force", "rebuild even when the package already loads")
    .parse();
  const options = program.opts<{ wheel?: string; package: string; force?: boolean }>();
  if (options.package !== "node" && options.package !== "node-gpu") {
    console.error(`backend:tfjs-node: --package must be node or node-gpu, got "${options.package}"`);
    process.exit(1);
  }
  const pkg = options.package as BindingPackage;
  try {
    const projects = pkg === "node" ? ["tensorflow-cpu", "tensorflow"] : ["tensorflow", "tensorflow-cpu"];
    const version = installFromWheel({ pkg, wheel: options.wheel, projects, force: options.force });
    say(
      `${NPM_NAME[pkg]} loads: tfjs backend "tensorflow", TensorFlow ${version}. ` +
        `Use it with --backend ${pkg} or ABLITERATE_BACKEND=${pkg}.`,
    );
    say(`a later npm ci or npm install removes it again (its install script fails offline); run this script again after one`);
  } catch (error) {
    if (error instanceof Skipped) {
      say(`skipped: ${error.message}`);
      process.exit(2);
    }
    console.error(`backend:tfjs-node: failed: ${(error as Error).message}`);
    process.exit(1);
  }
}
