// Rich outputs in Jupyter notebooks run by the project's tslab kernel. tslab's public display API
// sends one MIME type per call; a bundle of several (plotly JSON + HTML fallback + plain text) needs its
// internal `lastWriteDisplayData`, wrapped here once. Outside a kernel (CLI, tests) these print text.
import { createRequire } from "node:module";
import { plotlyCdnFreeHtml } from "./plotly-html.ts";
import type { Figure } from "../report/plots.ts";
import { figureSvg } from "../report/static-svg.ts";
import { escapeMarkup, svgImageTag } from "../report/markup.ts";

type WriteDisplayData = (
  content: { data: Record<string, unknown>; metadata: Record<string, unknown>; transient: { display_id?: string } },
  update: boolean,
) => void;

const require = createRequire(import.meta.url);

/** tslab's current writer, if this process is a tslab kernel executing a cell. */
function kernelWriter(): WriteDisplayData | undefined {
  // Only look at a tslab module the kernel already loaded: never load tslab (and zeromq) from the CLI. There
  // can be two copies (a kernel installed from one checkout running notebooks of another); the one running
  // the cell is the one whose writer is set.
  for (const [path, module] of Object.entries(require.cache)) {
    if (!/tslab[\\/]dist[\\/]jupyter\.js$/.test(path)) continue;
    const writer = (module?.exports as { lastWriteDisplayData?: WriteDisplayData | null }).lastWriteDisplayData;
    if (writer) return writer;
  }
  return undefined;
}

export function inKernel(): boolean {
  return kernelWriter() !== undefined;
}

/** Send one output with several representations; `displayId` + `update` replace an earlier output in place. */
export function displayBundle(data: Record<string, unknown>, options: { displayId?: string; update?: boolean } = {}): void {
  const write = kernelWriter();
  if (!write) {
    console.log(String(data["text/plain"] ?? ""));
    return;
  }
  write({ data, metadata: {}, transient: options.displayId ? { display_id: options.displayId } : {} }, options.update ?? false);
}

let counter = 0;

/**
 * A plotly figure as plotly JSON (VS Code, JupyterLab with plotly), an HTML fallback that shows a static
 * picture and draws the interactive plot where scripts run (nbconvert HTML, classic, trusted Lab), the
 * same picture as SVG (viewers that show no HTML) and text.
 */
export function showFigure(figure: Figure, summary?: string): void {
  displayBundle(figureBundle(figure, summary));
}

/** A figure shown once and then redrawn in place with each new version (a training curve as it grows). */
export function liveFigure(): (figure: Figure, summary?: string) => void {
  const id = `abliterate-live-${process.pid}-${++counter}`;
  let first = true;
  return (figure, summary) => {
    displayBundle(figureBundle(figure, summary), { displayId: id, update: !first });
    first = false;
  };
}

function figureBundle(figure: Figure, summary?: string): Record<string, unknown> {
  const title = (figure.layout.title as { text?: string } | undefined)?.text ?? "figure";
  const traces = figure.data.map((t) => `${t.type}${t.name ? ` "${t.name}"` : ""}`).join(", ");
  const svg = figureSvg(figure);
  return {
    "application/vnd.plotly.v1+json": { data: figure.data, layout: figure.layout, config: { responsive: true } },
    "text/html": plotlyCdnFreeHtml(figure, `abliterate-plot-${process.pid}-${++counter}`, svg),
    "image/svg+xml": svg,
    "text/plain": summary ?? `${title} [${traces}]`,
  };
}

/** A drawn picture (SVG) as SVG, as an HTML image (untrusted notebooks, GitHub) and as its description. */
export function showPicture(svg: string, description: string): void {
  displayBundle({ "text/html": svgImageTag(svg, description), "image/svg+xml": svg, "text/plain": description });
}

/** A table of rows as HTML and aligned plain text. */
export function showTable(rows: readonly Record<string, unknown>[], options: { columns?: string[]; digits?: number } = {}): void {
  const columns = options.columns ?? Object.keys(rows[0] ?? {});
  const fmt = (v: unknown) =>
    typeof v === "number"
      ? Number.isInteger(v)
        ? String(v)
        : v.toFixed(options.digits ?? 4)
      : v === undefined || v === null
        ? ""
        : String(v);
  const esc = escapeMarkup;
  const head = columns.map((c) => `<th>${esc(c)}</th>`).join("");
  const cell = (value: unknown) => `<td style="text-align:left">${esc(fmt(value))}</td>`;
  const body = rows.map((r) => `<tr>${columns.map((c) => cell(r[c])).join("")}</tr>`).join("");
  const html = `<table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
  const widths = columns.map((c) => Math.min(60, Math.max(c.length, ...rows.map((r) => fmt(r[c]).length))));
  const line = (cells: string[]) => cells.map((s, i) => s.slice(0, widths[i]).padEnd(widths[i])).join("  ");
  const text = [line(columns), ...rows.map((r) => line(columns.map((c) => fmt(r[c]))))].join("\n");
  displayBundle({ "text/html": html, "text/plain": text });
}

/** A progress bar that updates one output in place (a line per update outside a kernel). */
export function progressBar(label: string): (done: number, total: number, detail?: string) => void {
  const id = `abliterate-progress-${process.pid}-${++counter}`;
  let first = true;
  const started = performance.now();
  let lastShown = -1;
  return (done, total, detail) => {
    const now = performance.now();
    if (done < total && now - lastShown < 250 && !first) return; // at most 4 updates a second
    lastShown = now;
    const fraction = total > 0 ? done / total : 1;
    const seconds = (now - started) / 1000;
    const eta = fraction > 0 && fraction < 1 ? ` ETA ${(seconds / fraction - seconds).toFixed(0)} s` : "";
    const width = 30;
    const bar = "█".repeat(Math.round(fraction * width)).padEnd(width, "░");
    const text = `${label} ${bar} ${done}/${total}${detail ? ` ${detail}` : ""} (${seconds.toFixed(1)} s${eta})`;
    if (!inKernel()) {
      if (done >= total) console.log(text);
      return;
    }
    displayBundle({ "text/plain": text }, { displayId: id, update: !first });
    first = false;
  };
}

/** Progress of a stage function that reports several steps: one in-place bar per step name. */
export function stepProgressBars(prefix = ""): (step: string, done: number, total: number, detail?: string) => void {
  const bars = new Map<string, ReturnType<typeof progressBar>>();
  return (step, done, total, detail) => {
    if (!bars.has(step)) bars.set(step, progressBar(`${prefix}${step}`));
    bars.get(step)!(done, total, detail);
  };
}
