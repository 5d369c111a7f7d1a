// The MLP activations of the supported architectures, built from differentiable ops.
import * as tf from "@tensorflow/tfjs-core";
import type { Activation } from "./architecture.ts";

export const silu: Activation = (x) => tf.mul(x, tf.sigmoid(x));

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/** GELU, tanh approximation (PyTorch's `gelu(approximate="tanh")`, Hugging Face's gelu_pytorch_tanh). */
export const geluTanh: Activation = (x) =>
  tf.tidy(() => {
    const inner = tf.mul(SQRT_2_OVER_PI, tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
    return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
  });
