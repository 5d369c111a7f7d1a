// Where a load's time goes: a random model with Qwen2.5-0.5B's shapes (bf16 checkpoint, 16 bits a weight) loaded
// on the native BLAS path, which holds every weight as float32. Prints the whole `loadModel`, then, in the same
// process and on the same bytes, its three costs measured apart:
// - reading the checkpoint's bytes (from the page cache: the checkpoint was just written) into a reused buffer;
// - decoding them to float32 into memory already touched (decodeToFloat32, as the loader does, piece by piece);
// - the first touch of as much fresh float32 memory as the weights take (largeFloat32Array, one write a page),
//   measured first, before the load: what new memory costs before anything is written into it. On a virtual
//   machine whose memory the host backs lazily it varies from run to run with what the machine's memory was
//   last used for;
// and what is left (the tokenizer, the chat template, the engine's setup). The first touch and the float32
// decode are what keeping the weights in their stored precision (mapped, not converted) would avoid.
// Run: npm run bench:load   (LOAD_PROFILE_SHAPE=smollm2-135m for the small model)
import { open, mkdtemp, rm, stat } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { backendInfo, decodeToFloat32, initBackend, loadModel } from "../src/index.ts";
import { largeFloat32Array } from "../src/pages.ts";
import { DECODE_PIECE_BYTES } from "../src/safetensors/read.ts";
import { writeRandomCheckpoint } from "../tools/random-checkpoint.ts";
import { QWEN25_05B_SHAPES, SMOLLM2_135M_SHAPES } from "../tools/shapes.ts";

const SHAPES = { "qwen2.5-0.5b": QWEN25_05B_SHAPES, "smollm2-135m": SMOLLM2_135M_SHAPES } as const;
const shapeName = (process.env.LOAD_PROFILE_SHAPE ?? "qwen2.5-0.5b") as keyof typeof SHAPES;
if (!SHAPES[shapeName]) throw new Error(`LOAD_PROFILE_SHAPE: one of ${Object.keys(SHAPES).join(", ")}, got "${shapeName}"`);
const PAGE_FLOATS = 1024;
/** Fresh memory is asked for in arrays of 64 MiB, about the size of the model's larger weights. */
const ARRAY_FLOATS = 16 << 20;

const seconds = async (fn: () => unknown): Promise<number> => {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
};

await initBackend({ backend: "wasm" });
if (!(await backendInfo()).blas)
  throw new Error("the load profile is of the native BLAS path: install libopenblas0-pthread (Debian/Ubuntu)");
const dir = await mkdtemp(join(tmpdir(), "abliterate-load-profile-"));
try {
  await writeRandomCheckpoint(dir, SHAPES[shapeName], { dtype: "BF16" });
  const file = join(dir, "model.safetensors");
  const bytes = (await stat(file)).size;
  // First, while this process has used little memory: the first touch of as many float32 values as the
  // checkpoint holds bf16 ones (the header's few bytes aside), held until the end, so that the load below
  // cannot reuse those pages.
  const values = Math.floor(bytes / 2);
  const held: Float32Array[] = [];
  const touch = await seconds(() => {
    for (let left = values; left > 0; left -= ARRAY_FLOATS) {
      const array = largeFloat32Array(Math.min(ARRAY_FLOATS, left));
      for (let i = 0; i < array.length; i += PAGE_FLOATS) array[i] = 1;
      held.push(array);
    }
  });
  const load = await seconds(async () => (await loadModel(dir)).dispose());
  const handle = await open(file);
  const piece = new Uint8Array(DECODE_PIECE_BYTES);
  const floats = new Float32Array(DECODE_PIECE_BYTES / 2).fill(0); // touched before the clock starts
  let decode = 0;
  const read = await seconds(async () => {
    for (let at = 0; at < bytes; at += DECODE_PIECE_BYTES) {
      const { bytesRead } = await handle.read(piece, 0, Math.min(DECODE_PIECE_BYTES, bytes - at), at);
      const n = bytesRead - (bytesRead % 2);
      decode += await seconds(() => decodeToFloat32(piece.subarray(0, n), "BF16", floats.subarray(0, n / 2)));
    }
  });
  await handle.close();
  held.length = 0;
  const rest = load - (read - decode) - decode - touch;
  const gb = (b: number) => (b / 1e9).toFixed(2);
  console.log(`${cpus().length} cores, ${cpus()[0]?.model}; ${shapeName}'s shapes, random bf16 weights (${gb(bytes)} GB)`);
  console.log(`loadModel, native BLAS path (every weight to float32, ${gb(4 * values)} GB): ${load.toFixed(2)} s`);
  console.log(`  read the checkpoint (page cache), ${DECODE_PIECE_BYTES >> 20} MiB pieces: ${(read - decode).toFixed(2)} s`);
  console.log(`  decode bf16 to float32 into touched memory: ${decode.toFixed(2)} s`);
  console.log(`  first touch of ${gb(4 * values)} GB of fresh float32 memory: ${touch.toFixed(2)} s`);
  console.log(`  the rest (tokenizer, template, setup; negative: the parts overlap in loadModel): ${rest.toFixed(2)} s`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
