// config.json parsed into a typed config that keeps Hugging Face's field names verbatim. Which
// model_types exist, and the defaults Hugging Face's config class gives the fields a config.json may
// omit, come from the one table in models/registry.ts.
import { readFile } from "node:fs/promises";
import { notAFile } from "./files.ts";
import { join } from "node:path";
import { ARCHITECTURES, architectureOf, type Architecture } from "./models/registry.ts";
import { activationName, ConfigError, configSchema, headDim, rotaryDim, type ModelConfig } from "./models/model-config.ts";

export {
  activationName,
  ConfigError,
  eosTokenIds,
  headDim,
  numKvHeads,
  rotaryDim,
  tiedEmbeddings,
  type ModelConfig,
} from "./models/model-config.ts";

export const SUPPORTED_MODEL_TYPES: readonly string[] = Object.keys(ARCHITECTURES);

/**
 * Validate a parsed config.json; `source` names the file in errors. A multimodal checkpoint whose
 * language model sits in `text_config` (Gemma 3) gives that text config, keeping the outer model_type.
 */
export function parseConfig(json: unknown, source = "config.json"): ModelConfig {
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new ConfigError(`${source}: not a JSON object`);
  const record = json as Record<string, unknown>;
  const type = record.model_type;
  if (typeof type !== "string") throw new ConfigError(`${source}: model_type: expected a string, got ${JSON.stringify(type)}`);
  if (!Object.hasOwn(ARCHITECTURES, type))
    throw new ConfigError(`${source}: model_type "${type}" is not supported (supported: ${SUPPORTED_MODEL_TYPES.join(", ")})`);
  const arch = ARCHITECTURES[type];
  let fields: Record<string, unknown> = record;
  if (arch.textConfig) {
    const text = record.text_config;
    if (typeof text !== "object" || text === null)
      throw new ConfigError(`${source}: model_type "${type}" keeps its language model in text_config, which is missing`);
    // Token ids usually sit at the top level of a multimodal config.
    const ids = Object.fromEntries(
      ["bos_token_id", "eos_token_id", "pad_token_id", "tie_word_embeddings", "torch_dtype"]
        .filter((k) => Object.hasOwn(record, k))
        .map((k) => [k, record[k]]),
    );
    fields = { ...ids, ...(text as Record<string, unknown>), model_type: type };
  }
  const result = configSchema.safeParse({ ...arch.configDefaults, ...fields });
  if (!result.success) {
    const prefix = arch.textConfig ? "text_config." : "";
    const problems = result.error.issues.map((i) => `${prefix}${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
    throw new ConfigError(`${source}: ${problems}`);
  }
  const config = result.data;
  const heads = config.num_attention_heads;
  const kvHeads = config.num_key_value_heads ?? heads;
  if (heads % kvHeads !== 0)
    throw new ConfigError(`${source}: num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kvHeads}`);
  if (config.head_dim == null && config.hidden_size % heads !== 0) {
    throw new ConfigError(
      `${source}: hidden_size ${config.hidden_size} is not divisible by num_attention_heads ${heads} and head_dim is not given`,
    );
  }
  const rotary = rotaryDim(config);
  const factor = config.partial_rotary_factor !== undefined ? ` with partial_rotary_factor ${config.partial_rotary_factor}` : "";
  if (rotary % 2 !== 0)
    throw new ConfigError(
      `${source}: head_dim ${headDim(config)}${factor} ` +
        `rotates ${rotary} dimensions, an odd number; rotary embeddings turn pairs of dimensions, so it must be even`,
    );
  const activation = activationName(config);
  if (!Object.hasOwn(arch.activations, activation)) {
    throw new ConfigError(
      `${source}: activation "${activation}" is not supported for model_type ${type} (supported: ${Object.keys(arch.activations).join(
        ", " + "",
      )})`,
    );
  }
  if (config.layer_types && config.layer_types.length !== config.num_hidden_layers) {
    throw new ConfigError(`${source}: layer_types has ${config.layer_types.length} entries for ${config.num_hidden_layers} layers`);
  }
  arch.checkConfig?.(config, source);
  checkRopeScaling(config, source);
  return config;
}

const ROPE_TYPES = ["default", "linear", "llama3", "longrope"];

function checkRopeScaling(config: ModelConfig, source: string): void {
  const scaling = config.rope_scaling;
  if (!scaling) return;
  if (scaling.type === "su") scaling.type = "longrope"; // Phi-3's first configs named longrope "su", as Hugging Face renames it
  const type = scaling.rope_type ?? scaling.type;
  if (type === undefined || !ROPE_TYPES.includes(type))
    throw new ConfigError(`${source}: rope_scaling type "${type}" is not supported (supported: ${ROPE_TYPES.join(", ")})`);
  if (type === "linear" && scaling.factor === undefined) throw new ConfigError(`${source}: rope_scaling of type linear needs a factor`);
  if (type === "longrope") {
    const half = rotaryDim(config) / 2;
    for (const name of ["short_factor", "long_factor"] as const) {
      const f = scaling[name];
      if (!f || f.length !== half)
        throw new ConfigError(
          `${source}: rope_scaling.${name} must list ${half} numbers (rotary dimension / 2), got ${f ? f.length : "none"}`,
        );
    }
  }
}

export async function loadConfig(dir: string): Promise<ModelConfig> {
  return parseConfig(await readConfigJson(dir), join(dir, "config.json"));
}

/** config.json as JSON, unvalidated (the export rewrites it). */
export async function readConfigJson(dir: string): Promise<Record<string, unknown>> {
  const path = join(dir, "config.json");
  const why = await notAFile(path);
  if (why) throw new ConfigError(`${path}: ${why}`);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new ConfigError(
      `${path}: cannot read config.json (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); is ${dir} a ` +
        `Hugging Face checkpoint folder?`,
    );
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${path}: not valid JSON (${(error as Error).message})`);
  }
}

export function architectureFor(config: ModelConfig): Architecture {
  return architectureOf(config.model_type);
}
