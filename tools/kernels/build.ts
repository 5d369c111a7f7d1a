// Build src/kernels/edit.wasm from src/kernels/edit.wat with wabt's wat2wasm (a development dependency):
// npm run build:kernels. The binary is committed (about 2 KB) so that users need no build step;
// test/kernels.test.ts checks it is this build of the text.
import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import wabtInit from "wabt";

export const KERNELS_WAT = fileURLToPath(new URL("../../src/kernels/edit.wat", import.meta.url));
export const KERNELS_WASM = fileURLToPath(new URL("../../src/kernels/edit.wasm", import.meta.url));

/** The module assembled from edit.wat (validated). */
export async function assembleKernels(): Promise<Uint8Array> {
  const wabt = await wabtInit();
  const module = wabt.parseWat("edit.wat", await readFile(KERNELS_WAT, "utf8"), { simd: true });
  try {
    module.validate();
    return module.toBinary({}).buffer;
  } finally {
    module.destroy();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const binary = await assembleKernels();
  await writeFile(KERNELS_WASM, binary);
  console.log(`wrote ${KERNELS_WASM} (${binary.length} bytes)`);
}
