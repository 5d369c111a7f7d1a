// Run as a child process by test/memory.test.ts: fills the stock wasm heap, then multiplies by a new weight,
// which XNNPACK cannot pack. Prints the error the guarded kernel throws, or the (garbage) result.
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../../src/index.ts";

await initBackend({ backend: "wasm" });
const keep: tf.Tensor[] = [];
const chunk = 16 * 1024 * 1024; // floats: 64 MB
for (let total = 0; total < 3.9 * 1024 ** 3; total += chunk * 4) keep.push(tf.fill([chunk], 1));
const x = tf.ones([4, 2048]);
const w = tf.ones([2048, 4096]); // 32 MB: its packed copy no longer fits
try {
  const y = tf.matMul(x, w);
  console.log(`computed ${y.dataSync().slice(0, 3).join(", ")}`);
} catch (error) {
  console.log(`threw: ${(error as Error).message}`);
}
