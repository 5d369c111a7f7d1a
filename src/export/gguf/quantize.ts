// The k-quants (Q4_K_M and friends) by llama.cpp's own quantiser rather than a reimplementation: the prebuilt
// llama library that node-llama-cpp ships exports `llama_model_quantize`, called here through koffi on a
// float GGUF file this package wrote. The struct below is `llama_model_quantize_params` of the llama.cpp
// release node-llama-cpp 3.21.1 carries (include/llama.h); another release may lay it out differently, so
// the version is checked.
import { readdir } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";

/** llama.cpp's file types (llama_ftype) reachable through its quantiser, by the names llama-quantize uses. */
export const LLAMA_CPP_QUANTS = { q2_k: 10, q3_k_m: 12, q4_k_s: 14, q4_k_m: 15, q5_k_s: 16, q5_k_m: 17, q6_k: 18 } as const;
export type LlamaCppQuant = keyof typeof LLAMA_CPP_QUANTS;

/** The node-llama-cpp release whose llama library layout this file was written against. */
const KNOWN_VERSION = "3.21.1";

interface QuantizeLibrary {
  quantize: (input: string, output: string, params: unknown) => number;
  defaults: () => Record<string, unknown>;
}

let library: Promise<QuantizeLibrary> | undefined;

/** The prebuilt llama library of node-llama-cpp for this platform, loaded once. */
async function quantizeLibrary(): Promise<QuantizeLibrary> {
  library ??= (async () => {
    const require = createRequire(import.meta.url);
    const os = process.platform === "win32" ? "win" : process.platform === "darwin" ? "mac" : process.platform;
    const platform = `@node-llama-cpp/${os}-${process.arch}`;
    let binsDir: string;
    let version: string;
    try {
      const { getBinsDir } = (await import(platform)) as { getBinsDir: () => { binsDir: string; packageVersion: string } };
      ({ binsDir, packageVersion: version } = getBinsDir());
    } catch (error) {
      throw new Error(
        `llama.cpp's quantiser comes from node-llama-cpp's prebuilt library ${platform}, which is not installed (npm install ` +
          `node-llama-cpp@${KNOWN_VERSION}): ${(error as Error).message}`,
      );
    }
    if (version !== KNOWN_VERSION)
      throw new Error(`${platform} is version ${version}; the quantiser's parameters are laid out for ${KNOWN_VERSION}`);
    const dir = join(binsDir, `${platform.split("/")[1]}`);
    const file = (await readdir(dir)).find((f) => /^(lib)?llama(\.v[\d.]+)?\.(so|dylib|dll)$/.test(f));
    if (!file) throw new Error(`${dir}: no llama library found`);
    const koffi = require("koffi") as typeof import("koffi");
    const lib = koffi.load(join(dir, file));
    koffi.struct("llama_model_quantize_params", {
      nthread: "int32",
      ftype: "int32",
      output_tensor_type: "int32",
      token_embedding_type: "int32",
      allow_requantize: "bool",
      quantize_output_tensor: "bool",
      only_copy: "bool",
      pure: "bool",
      keep_split: "bool",
      dry_run: "bool",
      imatrix: "void *",
      kv_overrides: "void *",
      tt_overrides: "void *",
      prune_layers: "void *",
      max_buf_size: "size_t",
    });
    // Silence llama.cpp's per-tensor log lines; failures come back as a non-zero status.
    const callback = koffi.proto("void ggml_log_callback(int level, const char *text, void *user_data)");
    lib.func("void llama_log_set(ggml_log_callback *cb, void *user_data)")(
      koffi.register(() => {}, koffi.pointer(callback)),
      null,
    );
    lib.func("void llama_backend_init()")();
    return {
      quantize: lib.func("uint32 llama_model_quantize(const char *input, const char *output, const llama_model_quantize_params *params)"),
      defaults: lib.func("llama_model_quantize_params llama_model_quantize_default_params()"),
    };
  })();
  return library;
}

/**
 * Quantise the GGUF file `input` (F32, F16 or BF16) into `output` with llama.cpp's quantiser. Q8_0 is also
 * accepted, to compare llama.cpp's Q8_0 with the one written here.
 */
export async function quantizeWithLlamaCpp(
  input: string,
  output: string,
  quant: LlamaCppQuant | "q8_0",
  options: { threads?: number } = {},
): Promise<void> {
  const ftypes: Record<string, number> = { ...LLAMA_CPP_QUANTS, q8_0: 7 };
  if (!Object.hasOwn(ftypes, quant))
    throw new Error(`${quant} is not one of llama.cpp's quantisations reachable here (${Object.keys(ftypes).join(", ")})`);
  const lib = await quantizeLibrary();
  const params = { ...lib.defaults(), ftype: ftypes[quant], nthread: options.threads ?? 0 };
  const status = lib.quantize(input, output, params);
  if (status !== 0) throw new Error(`llama.cpp could not quantise ${input} to ${quant} (status ${status})`);
}
