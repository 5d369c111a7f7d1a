// Notebooks written byte for byte as Jupyter writes them (nbformat's `writes`: keys sorted, one-space
// indent, non-ASCII kept, multi-line strings split into lists of lines, Python's float notation), with a
// cell id on every cell and the kernel's own `language_info`: opening a committed notebook in Jupyter and
// saving it changes nothing.
import { randomBytes } from "node:crypto";

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Python's str.splitlines(keepends=True). */
export function splitLines(text: string): string[] {
  return text
    .match(/[^\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]*(?:\r\n|[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]|$)/g)!
    .filter((line) => line !== "");
}

/** A number as Python's json module writes it (repr: exponent notation below 1e-4 and from 1e16). */
export function pythonNumber(n: number): string {
  if (!Number.isFinite(n)) throw new Error(`a notebook cannot hold ${n}`);
  const js = String(n);
  if (!/[.e]/.test(js)) return js; // an integer: Python reads it as an int and writes it back the same
  const [mantissa, exp] = n.toExponential().split("e"); // the shortest digits that read back as n
  const e = Number(exp);
  if (e >= -4 && e < 16) return js; // JS writes fixed notation from 1e-7 to 1e21, as Python does here
  return `${mantissa}e${e < 0 ? "-" : "+"}${String(Math.abs(e)).padStart(2, "0")}`;
}

function serialize(value: Json, indent: string): string {
  if (value === null || typeof value === "boolean") return String(value);
  if (typeof value === "number") return pythonNumber(value);
  if (typeof value === "string") return JSON.stringify(value);
  const inner = `${indent} `;
  if (Array.isArray(value))
    return value.length === 0 ? "[]" : `[\n${value.map((v) => inner + serialize(v, inner)).join(",\n")}\n${indent}]`;
  const keys = Object.keys(value)
    .filter((k) => value[k] !== undefined)
    .sort();
  return keys.length === 0
    ? "{}"
    : `{\n${keys.map((k) => `${inner}${JSON.stringify(k)}: ` + `${serialize(value[k], inner)}`).join(",\n")}\n${indent}}`;
}

const isJsonMime = (mime: string) => mime === "application/json" || mime.endsWith("+json");

/** nbformat's split_lines: sources, stream text and text-like output data as lists of lines. */
function splitNotebook(notebook: { cells: Record<string, unknown>[] }): void {
  const split = (v: unknown) => (typeof v === "string" ? splitLines(v) : v);
  for (const cell of notebook.cells) {
    cell.source = split(cell.source);
    for (const out of (cell.outputs as Record<string, unknown>[] | undefined) ?? []) {
      if (out.output_type === "stream") out.text = split(out.text);
      const data = out.data as Record<string, unknown> | undefined;
      if (data) for (const mime of Object.keys(data)) if (!isJsonMime(mime)) data[mime] = split(data[mime]);
    }
  }
}

/** The notebook as Jupyter saves it (a copy is changed, not the argument). */
export function notebookText(notebook: object): string {
  const copy = JSON.parse(JSON.stringify(notebook)) as { cells: Record<string, unknown>[] };
  for (const cell of copy.cells) {
    if (Array.isArray(cell.source)) cell.source = cell.source.join("");
    for (const out of (cell.outputs as Record<string, unknown>[] | undefined) ?? []) {
      if (Array.isArray(out.text)) out.text = out.text.join("");
      const data = out.data as Record<string, unknown> | undefined;
      if (data)
        for (const mime of Object.keys(data))
          if (!isJsonMime(mime) && Array.isArray(data[mime])) data[mime] = (data[mime] as string[]).join("");
    }
  }
  splitNotebook(copy);
  return `${serialize(copy as unknown as Json, "")}\n`;
}

/** Give every cell an id (nbformat 4.5 requires one; Jupyter invents random ones, marking the file changed). */
export function ensureCellIds(notebook: { cells: { id?: string }[]; nbformat_minor: number }): void {
  const seen = new Set<string>();
  for (const cell of notebook.cells) {
    if (!cell.id || seen.has(cell.id)) {
      do cell.id = randomBytes(4).toString("hex");
      while (seen.has(cell.id));
    }
    seen.add(cell.id);
  }
  notebook.nbformat_minor = Math.max(notebook.nbformat_minor, 5);
}
