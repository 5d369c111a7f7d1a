// The project's Jupyter kernel: tslab running under tsx, so that notebooks import the helper package
// by name (`from "abliterate"`) straight from its TypeScript sources.
import { createRequire } from "node:module";
import { join } from "node:path";
import { PACKAGE_ROOT } from "../src/paths.ts";

export const KERNEL_NAME = "abliterate";
export const KERNEL_DISPLAY_NAME = "TypeScript (abliterate)";

const require = createRequire(import.meta.url);

export function kernelSpec(): {
  argv: string[];
  display_name: string;
  language: string;
  env: Record<string, string>;
  metadata: Record<string, unknown>;
} {
  return {
    argv: [
      process.execPath,
      "--import",
      require.resolve("tsx"),
      require.resolve("tslab/bin/tslab"),
      "kernel",
      "--config-path",
      "{connection_file}",
    ],
    display_name: KERNEL_DISPLAY_NAME,
    language: "typescript",
    env: { NODE_PATH: join(PACKAGE_ROOT, "node_modules") },
    metadata: { debugger: false },
  };
}
