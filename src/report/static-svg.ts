// A static SVG picture of a plotly figure, for the places where no JavaScript runs: GitHub, nbviewer, an
// untrusted notebook in JupyterLab, an offline HTML export. It draws the part of plotly.js the project's
// figures use (scatter lines, markers and text; grouped or overlaid bars; histograms; heatmaps with a
// colour bar; a second y axis; equal axis scales) and refuses anything else by name: a static picture
// that silently left something out would be wrong where nobody can compare it with the interactive one.
import { bin } from "d3-array";
import { scaleBand, scaleLinear, type ScaleBand, type ScaleLinear } from "d3-scale";
import { interpolateRdBu, interpolateViridis } from "d3-scale-chromatic";
import type { Figure } from "./plots.ts";
import { escapeMarkup } from "./markup.ts";

type Trace = Record<string, unknown>;
type Axis = {
  title?: { text?: string };
  range?: [number, number];
  side?: string;
  overlaying?: string;
  scaleanchor?: string;
  type?: string;
  zeroline?: boolean;
};

/** plotly.js's default trace colours, in order. */
const COLORWAY = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
/** plotly's named colour scales, as functions of t in [0, 1] (plotly's RdBu runs blue to red). */
const COLORSCALES: Record<string, (t: number) => string> = { RdBu: (t) => interpolateRdBu(1 - t), Viridis: interpolateViridis };
const DASHES: Record<string, string> = { solid: "", dot: "2,3", dash: "6,4", dashdot: "6,3,2,3", longdash: "10,4" };
const TRACE_TYPES = new Set(["scatter", "bar", "histogram", "heatmap"]);
const UNSUPPORTED_LAYOUT = [
  "shapes",
  "annotations",
  "images",
  "updatemenus",
  "sliders",
  "grid",
  "xaxis2",
  "yaxis3",
  "polar",
  "scene",
  "geo",
];

const CHAR = 6.4; // average width of a character at 11 px, for laying out labels
const esc = escapeMarkup;
const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);
const fmt = (v: number) => String(Number(v.toFixed(6)));

function fail(what: string): never {
  throw new Error(
    `static figure: ${what} is not drawn by the static SVG renderer (src/report/static-svg.ts); use the supported subset or extend it`,
  );
}

function checkFigure(figure: Figure): void {
  for (const key of UNSUPPORTED_LAYOUT) if (figure.layout[key] !== undefined) fail(`layout.${key}`);
  for (const name of ["xaxis", "yaxis", "yaxis2"]) {
    const type = (figure.layout[name] as Axis | undefined)?.type;
    if (type !== undefined && type !== "linear" && type !== "category") fail(`layout.${name}.type "${type}"`);
  }
  figure.data.forEach((t, i) => {
    const type = String(t.type ?? "scatter");
    if (!TRACE_TYPES.has(type)) fail(`trace ${i} of type "${type}"`);
    const marker = t.marker as { color?: unknown } | undefined;
    if (marker?.color !== undefined && typeof marker.color !== "string") fail(`trace ${i}'s marker.color array`);
    if (t.xaxis !== undefined && t.xaxis !== "x") fail(`trace ${i}'s xaxis "${String(t.xaxis)}"`);
    if (t.yaxis !== undefined && t.yaxis !== "y" && t.yaxis !== "y2") fail(`trace ${i}'s yaxis "${String(t.yaxis)}"`);
    if (type === "heatmap" && t.colorscale !== undefined && (typeof t.colorscale !== "string" || !COLORSCALES[t.colorscale]))
      fail(`trace ${i}'s colorscale ${JSON.stringify(t.colorscale)} (known: ${Object.keys(COLORSCALES).join(", ")})`);
    if (type === "histogram" && (t.y !== undefined || t.histnorm !== undefined || t.histfunc !== undefined))
      fail(`trace ${i}: a histogram other than counts of x`);
  });
}

interface Bins {
  edges: number[];
  counts: number[][]; // per histogram trace
}

/** Shared bins for every histogram trace (about 20, on round numbers), as plotly bins overlaid histograms. */
function histogramBins(hist: Trace[]): Bins | undefined {
  if (hist.length === 0) return undefined;
  const all = hist.flatMap((t) => (t.x as unknown[]).map(num).filter((v): v is number => v !== undefined));
  const given = hist[0].xbins as { start?: number; end?: number; size?: number } | undefined;
  if (given) {
    const { start, end, size } = given;
    if (!(num(start) !== undefined && num(end) !== undefined && num(size)! > 0 && end! > start!))
      fail(`xbins ${JSON.stringify(given)} (start < end and size > 0 are needed)`);
    if (hist.some((t) => JSON.stringify(t.xbins) !== JSON.stringify(given))) fail("histograms with different xbins");
    const n = Math.round((end! - start!) / size!);
    const edges = Array.from({ length: n + 1 }, (_, k) => start! + k * size!);
    // plotly's bins are [a, b) and values outside [start, end] are not counted
    return {
      edges,
      counts: hist.map((t) =>
        edges
          .slice(0, -1)
          .map(
            (a, k) =>
              (t.x as unknown[]).map(num).filter((v) => v !== undefined && v >= a && (k === n - 1 ? v <= edges[n] : v < edges[k + 1]))
                .length,
          ),
      ),
    };
  }
  let lo = Math.min(...all);
  let hi = Math.max(...all);
  if (all.length === 0) [lo, hi] = [0, 1];
  if (lo === hi) [lo, hi] = [lo - 0.5, hi + 0.5];
  const x = scaleLinear().domain([lo, hi]).nice(20);
  const edges = x.ticks(20);
  if (edges[0] > lo) edges.unshift(x.domain()[0]);
  if (edges[edges.length - 1] < hi) edges.push(x.domain()[1]);
  const binner = bin()
    .domain([edges[0], edges[edges.length - 1]])
    .thresholds(edges.slice(1, -1));
  return {
    edges,
    counts: hist.map((t) => binner((t.x as unknown[]).map(num).filter((v): v is number => v !== undefined)).map((b) => b.length)),
  };
}

type XScale = { kind: "band"; scale: ScaleBand<string>; labels: string[] } | { kind: "linear"; scale: ScaleLinear<number, number> };

function extentOf(values: number[], includeZero: boolean, pad: number): [number, number] {
  let lo = Math.min(...values, ...(includeZero ? [0] : []));
  let hi = Math.max(...values, ...(includeZero ? [0] : []));
  if (!Number.isFinite(lo)) [lo, hi] = [0, 1];
  if (lo === hi) [lo, hi] = [lo - (Math.abs(lo) || 1) / 2, hi + (Math.abs(hi) || 1) / 2];
  const p = (hi - lo) * pad;
  return [includeZero && lo === 0 ? 0 : lo - p, includeZero && hi === 0 ? 0 : hi + p];
}

/** The figure as a standalone SVG document. */
export function figureSvg(figure: Figure): string {
  const frame = frameOf(figure);
  const out: string[] = [];
  drawFrame(frame, out);
  drawTraces(frame, out);
  drawColorBar(frame, out);
  drawLegend(frame, out);
  out.push(`</svg>`);
  return out.join("\n");
}

/** Everything a figure's picture is drawn from: its traces, the legend, the plot area and the scales. */
function frameOf(figure: Figure) {
  checkFigure(figure);
  const { layout } = figure;
  const traces: Trace[] = figure.data.map((t) => ({ ...t, type: String(t.type ?? "scatter") }));
  const xAxis = (layout.xaxis ?? {}) as Axis;
  const yAxis = (layout.yaxis ?? {}) as Axis;
  const y2Axis = layout.yaxis2 as Axis | undefined;
  const barmode = String(layout.barmode ?? "group");
  if (!["group", "overlay"].includes(barmode)) fail(`layout.barmode "${barmode}"`);
  const heat = traces.find((t) => t.type === "heatmap");
  const histograms = traces.filter((t) => t.type === "histogram");
  const bins = histogramBins(histograms);

  // Legend entries: every named trace but heatmaps, shown when there are two or more (plotly's default).
  const colorOf = new Map<Trace, string>();
  traces.forEach((t, i) =>
    colorOf.set(
      t,
      (t.marker as { color?: string } | undefined)?.color ??
        (t.line as { color?: string } | undefined)?.color ??
        COLORWAY[i % COLORWAY.length],
    ),
  );
  const legend = traces.filter((t) => t.type !== "heatmap" && t.showlegend !== false && t.name !== undefined);
  const showLegend = (layout.showlegend as boolean | undefined) ?? legend.length >= 2;
  const legendWidth = showLegend ? Math.min(260, 34 + CHAR * Math.max(...legend.map((t) => String(t.name).length))) : 0;

  // The x axis: categories (strings, bars, heatmaps) or numbers.
  const categorical =
    xAxis.type === "category" ||
    traces.some((t) => t.type === "bar" || t.type === "heatmap" || (Array.isArray(t.x) && t.x.some((v) => typeof v === "string")));
  const categories: string[] = [];
  if (categorical)
    for (const t of traces)
      for (const v of (t.x as unknown[] | undefined) ?? []) if (!categories.includes(String(v))) categories.push(String(v));

  const width = Number(layout.width ?? 720);
  const height = Number(layout.height ?? 380);
  const margin = { l: 60, r: 20, t: 50, b: 50, ...(layout.margin as Record<string, number> | undefined) };
  const right = margin.r + legendWidth + (y2Axis ? 50 : 0) + (heat ? 70 : 0);
  const plotWidth = width - margin.l - right;
  // Category labels that do not fit their band are turned by 40 degrees; the margins grow to hold them.
  const longest = Math.min(40, Math.max(0, ...categories.map((c) => c.length)));
  const turned = categorical && categories.length > 0 && longest * CHAR > plotWidth / categories.length - 4;
  const bottom = margin.b + (turned ? longest * CHAR * Math.sin(Math.PI / 4.5) : 0);
  const left = turned
    ? Math.max(margin.l, categories[0].length * CHAR * Math.cos(Math.PI / 4.5) - plotWidth / categories.length / 2 + 8)
    : margin.l;
  const box = { x0: left, x1: width - right, y0: margin.t, y1: height - bottom };
  if (box.x1 - box.x0 < 40 || box.y1 - box.y0 < 40)
    fail(`a plot area of ${box.x1 - box.x0} x ${box.y1 - box.y0} px (layout.width ${width}, height ${height})`);

  let x: XScale;
  if (categorical) {
    x = {
      kind: "band",
      scale: scaleBand<string>()
        .domain(categories)
        .range([box.x0, box.x1])
        .paddingInner(heat ? 0 : 0.2)
        .paddingOuter(heat ? 0 : 0.1),
      labels: categories,
    };
  } else {
    const xs = traces
      .flatMap((t) => ((t.x as unknown[] | undefined) ?? (t.type === "scatter" ? (t.y as unknown[]).map((_, i) => i) : [])).map(num))
      .filter((v): v is number => v !== undefined);
    const domain = xAxis.range ?? (bins ? [bins.edges[0], bins.edges[bins.edges.length - 1]] : extentOf(xs, false, 0.04));
    x = { kind: "linear", scale: scaleLinear().domain(domain).range([box.x0, box.x1]) };
  }

  // y axes: numbers (the left one), a second one on the right, or the heatmap's categories.
  const valuesOn = (axis: "y" | "y2") =>
    traces
      .filter((t) => (t.yaxis ?? "y") === axis && t.type !== "heatmap")
      .flatMap((t) =>
        t.type === "histogram"
          ? bins!.counts[histograms.indexOf(t)]
          : ((t.y as unknown[]) ?? []).map(num).filter((v): v is number => v !== undefined),
      );
  const zeroBased = (axis: "y" | "y2") => traces.some((t) => (t.yaxis ?? "y") === axis && (t.type === "bar" || t.type === "histogram"));
  const yBand = heat
    ? scaleBand<string>()
        .domain(((heat.y as unknown[]) ?? (heat.z as unknown[][]).map((_, i) => i)).map(String))
        .range([box.y1, box.y0])
    : undefined;
  const y = scaleLinear()
    .domain(yAxis.range ?? extentOf(valuesOn("y"), zeroBased("y"), 0.05))
    .range([box.y1, box.y0]);
  const y2 = y2Axis
    ? scaleLinear()
        .domain(y2Axis.range ?? extentOf(valuesOn("y2"), zeroBased("y2"), 0.05))
        .range([box.y1, box.y0])
    : undefined;
  if (yAxis.scaleanchor === "x" && x.kind === "linear") equalScales(x.scale, y, box);
  return {
    layout,
    traces,
    xAxis,
    yAxis,
    y2Axis,
    barmode,
    heat,
    histograms,
    bins,
    colorOf,
    legend,
    showLegend,
    legendWidth,
    categorical,
    categories,
    width,
    height,
    margin,
    box,
    turned,
    longest,
    x,
    y,
    y2,
    yBand,
  };
}

type Frame = ReturnType<typeof frameOf>;

/** The picture's background, title, grid, axes and their titles. */
function drawFrame(f: Frame, out: string[]): void {
  const { layout, xAxis, yAxis, y2Axis, heat, width, height, margin, box, turned, longest, x, y, y2, yBand } = f;
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
      `font-family="Helvetica, Arial, sans-serif" font-size="11">`,
  );
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  const title = (layout.title as { text?: string } | undefined)?.text;
  if (title) {
    // Centred over the plot, moved right or left as far as needed to stay inside the picture.
    const half = (title.length * 8.2) / 2;
    const cx = Math.min(Math.max((box.x0 + box.x1) / 2, half + 8), width - half - 8);
    out.push(`<text x="${fmt(cx)}" y="${fmt(Math.max(18, margin.t / 2 + 4))}" text-anchor="middle" font-size="15">${esc(title)}</text>`);
  }

  // Grid and axes.
  const yTicks = heat ? [] : y.ticks(6);
  for (const v of yTicks)
    out.push(
      `<line x1="${box.x0}" x2="${box.x1}" y1="${fmt(y(v))}" y2="${fmt(y(v))}" stroke="#e6e6e6"/>`,
      `<text x="${box.x0 - 6}" y="${fmt(y(v) + 4)}" text-anchor="end">${esc(y.tickFormat(6)(v))}</text>`,
    );
  if (yBand)
    for (const c of thin(yBand.domain(), (box.y1 - box.y0) / 14))
      out.push(`<text x="${box.x0 - 6}" y="${fmt(yBand(c)! + yBand.bandwidth() / 2 + 4)}" text-anchor="end">${esc(c)}</text>`);
  if (y2) for (const v of y2.ticks(6)) out.push(`<text x="${box.x1 + 6}" y="${fmt(y2(v) + 4)}">${esc(y2.tickFormat(6)(v))}</text>`);
  if (x.kind === "linear") {
    const count = Math.max(2, Math.floor((box.x1 - box.x0) / 70));
    const format = x.scale.tickFormat(count);
    for (const v of x.scale.ticks(count)) {
      const px = fmt(x.scale(v));
      out.push(
        `<line x1="${px}" x2="${px}" y1="${box.y0}" y2="${box.y1}" stroke="#e6e6e6"/>`,
        `<text x="${px}" y="${box.y1 + 16}" text-anchor="middle">${esc(format(v))}</text>`,
      );
    }
  } else {
    const band = x.scale;
    for (const c of thin(x.labels, (box.x1 - box.x0) / (turned ? 14 : Math.max(14, longest * CHAR + 6)))) {
      const px = band(c)! + band.bandwidth() / 2;
      out.push(
        turned
          ? `<text transform="translate(${fmt(px)},${box.y1 + 12}) rotate(-40)" text-anchor="end">${esc(c)}</text>`
          : `<text x="${fmt(px)}" y="${box.y1 + 16}" text-anchor="middle">${esc(c)}</text>`,
      );
    }
  }
  if (!heat && y.domain()[0] < 0 && y.domain()[1] > 0 && yAxis.zeroline !== false)
    out.push(`<line x1="${box.x0}" x2="${box.x1}" y1="${fmt(y(0))}" y2="${fmt(y(0))}" stroke="#9a9a9a"/>`);
  out.push(`<rect x="${box.x0}" y="${box.y0}" width="${box.x1 - box.x0}" height="${box.y1 - box.y0}" fill="none" stroke="#444"/>`);
  const xTitle = xAxis.title?.text;
  if (xTitle)
    out.push(`<text x="${fmt((box.x0 + box.x1) / 2)}" y="${fmt(height - 10)}" text-anchor="middle" font-size="12">${esc(xTitle)}</text>`);
  const yTitle = yAxis.title?.text;
  if (yTitle)
    out.push(
      `<text transform="translate(${fmt(box.x0 - 46)},${fmt((box.y0 + box.y1) / 2)}) rotate(-90)" text-anchor="middle" ` +
        `font-size="12">${esc(yTitle)}</text>`,
    );
  if (y2Axis?.title?.text)
    out.push(
      `<text transform="translate(${box.x1 + 44},${fmt((box.y0 + box.y1) / 2)}) rotate(90)" text-anchor="middle" ` +
        `font-size="12">${esc(y2Axis.title.text)}</text>`,
    );
}

/** The traces, clipped to the plot area. */
function drawTraces(f: Frame, out: string[]): void {
  const { traces, barmode, histograms, bins, colorOf, box, x, y, y2, yBand } = f;
  // Traces, clipped to the plot area.
  out.push(
    `<defs><clipPath id="plot-area"><rect x="${box.x0}" y="${box.y0}" width="${box.x1 - box.x0}" ` +
      `height="${box.y1 - box.y0}"/></clipPath></defs><g clip-path="url(#plot-area)">`,
  );
  const bars = traces.filter((t) => t.type === "bar" || t.type === "histogram");
  const groups = barmode === "group" ? bars.length : 1;
  const px = (v: unknown): number | undefined =>
    x.kind === "band"
      ? v === undefined || v === null
        ? undefined
        : x.scale(String(v)) !== undefined
          ? x.scale(String(v))! + x.scale.bandwidth() / 2
          : undefined
      : num(v) === undefined
        ? undefined
        : x.scale(num(v)!);
  for (const [index, t] of traces.entries()) {
    out.push(`<g data-trace="${index}">`);
    drawTrace(t);
    out.push(`</g>`);
  }
  function drawTrace(t: Trace): void {
    const color = colorOf.get(t)!;
    const opacity = num(t.opacity) ?? 1;
    const yScale = t.yaxis === "y2" ? y2! : y;
    if (t.type === "heatmap") {
      const z = t.z as (number | null)[][];
      const xs = ((t.x as unknown[]) ?? z[0].map((_, i) => i)).map(String);
      const ys = yBand!.domain();
      const { zmin, zmax, scale } = heatScale(t);
      const band = (x as { scale: ScaleBand<string> }).scale;
      // texttemplate "%{z:.Nf}": each cell's value written on it, as plotly does.
      const template = t.texttemplate === undefined ? undefined : /^%\{z:\.(\d)f\}$/.exec(String(t.texttemplate));
      if (t.texttemplate !== undefined && !template) fail(`a heatmap texttemplate other than "%{z:.Nf}"`);
      z.forEach((row, i) =>
        row.forEach((v, j) => {
          if (num(v) === undefined) return;
          const tz = zmax > zmin ? Math.min(1, Math.max(0, (v! - zmin) / (zmax - zmin))) : 0.5;
          out.push(
            `<rect x="${fmt(band(xs[j])!)}" y="${fmt(yBand!(ys[i])!)}" width="${fmt(band.bandwidth() + 0.5)}" ` +
              `height="${fmt(yBand!.bandwidth() + 0.5)}" fill="${scale(tz)}"/>`,
          );
          if (template)
            out.push(
              `<text x="${fmt(band(xs[j])! + band.bandwidth() / 2)}" y="${fmt(yBand!(ys[i])! + yBand!.bandwidth() / 2 + 4)}" ` +
                `text-anchor="middle" font-size="10" fill="${Math.abs(tz - 0.5) > 0.3 ? "#ffffff" : "#000000"}">` +
                `${esc(v!.toFixed(Number(template[1])))}</text>`,
            );
        }),
      );
      return;
    }
    if (t.type === "bar" || t.type === "histogram") {
      const slot = barmode === "group" ? bars.indexOf(t) : 0;
      const rects: { left: number; w: number; v: number }[] = [];
      if (t.type === "histogram") {
        const counts = bins!.counts[histograms.indexOf(t)];
        const xs = (x as { scale: ScaleLinear<number, number> }).scale;
        counts.forEach((c, k) => {
          const [a, b] = [xs(bins!.edges[k]), xs(bins!.edges[k + 1])];
          const w = (b - a) / groups;
          rects.push({ left: a + slot * w + 0.5, w: Math.max(0.5, w - 1), v: c });
        });
      } else {
        const band = (x as { scale: ScaleBand<string> }).scale;
        (t.x as unknown[]).forEach((cat, k) => {
          const v = num((t.y as unknown[])[k]);
          if (v === undefined) return;
          const w = band.bandwidth() / groups;
          rects.push({ left: band(String(cat))! + slot * w, w: Math.max(0.5, w - 1), v });
        });
      }
      for (const r of rects) {
        if (r.v === 0) continue;
        const [top, bottomY] = [yScale(Math.max(0, r.v)), yScale(Math.min(0, r.v))];
        out.push(
          `<rect x="${fmt(r.left)}" y="${fmt(top)}" width="${fmt(r.w)}" height="${fmt(Math.max(0.5, bottomY - top))}" fill="${color}" ` +
            `fill-opacity="${opacity}"/>`,
        );
      }
      return;
    }
    // scatter
    const ys = (t.y as unknown[]) ?? [];
    const xs = (t.x as unknown[] | undefined) ?? ys.map((_, i) => i);
    const mode = String(t.mode ?? (ys.length < 20 ? "lines+markers" : "lines"));
    const points = ys.map((v, i) => ({ X: px(xs[i]), Y: num(v) === undefined ? undefined : yScale(num(v)!), i }));
    out.push(`<g opacity="${opacity}">`);
    if (mode.includes("lines")) {
      const line = (t.line ?? {}) as { dash?: string; width?: number };
      const dash = DASHES[line.dash ?? "solid"];
      if (dash === undefined) fail(`line.dash "${line.dash}"`);
      let d = "";
      let pen = false;
      for (const p of points) {
        if (p.X === undefined || p.Y === undefined) pen = false;
        else {
          d += `${pen ? "L" : "M"}${fmt(p.X)},${fmt(p.Y)}`;
          pen = true;
        }
      }
      if (d)
        out.push(
          `<path d="${d}" fill="none" stroke="${color}" stroke-width="${line.width ?? 2}"${dash ? ` stroke-dasharray="${dash}"` : ""}/>`,
        );
    }
    if (mode.includes("markers")) {
      const r = (num((t.marker as { size?: number } | undefined)?.size) ?? 6) / 2;
      for (const p of points)
        if (p.X !== undefined && p.Y !== undefined) out.push(`<circle cx="${fmt(p.X)}" cy="${fmt(p.Y)}" r="${r}" fill="${color}"/>`);
    }
    if (mode.includes("text")) {
      const texts = Array.isArray(t.text) ? (t.text as unknown[]) : points.map(() => t.text);
      const position = String(t.textposition ?? "middle center");
      const dy = position.startsWith("top") ? -8 : position.startsWith("bottom") ? 14 : 4;
      const anchor = position.endsWith("right") ? "start" : position.endsWith("left") ? "end" : "middle";
      const dx = anchor === "start" ? 6 : anchor === "end" ? -6 : 0;
      for (const p of points)
        if (p.X !== undefined && p.Y !== undefined && texts[p.i] !== undefined && texts[p.i] !== null)
          out.push(`<text x="${fmt(p.X + dx)}" y="${fmt(p.Y + dy)}" text-anchor="${anchor}" fill="#222">${esc(String(texts[p.i]))}</text>`);
    }
    out.push(`</g>`);
  }
  out.push(`</g>`);
}

/** A heatmap's colour bar: the scale from zmin (bottom) to zmax (top). */
function drawColorBar(f: Frame, out: string[]): void {
  const { heat, box, y2 } = f;
  if (heat) {
    // The colour bar: the scale from zmin (bottom) to zmax (top).
    const { zmin, zmax, scale } = heatScale(heat);
    const bx = box.x1 + (y2 ? 60 : 14);
    const steps = 40;
    const h = (box.y1 - box.y0) / steps;
    for (let k = 0; k < steps; k++)
      out.push(`<rect x="${bx}" y="${fmt(box.y1 - (k + 1) * h)}" width="14" height="${fmt(h + 0.5)}" fill="${scale((k + 0.5) / steps)}"/>`);
    const cbar = scaleLinear().domain([zmin, zmax]).range([box.y1, box.y0]);
    for (const v of cbar.ticks(5)) out.push(`<text x="${bx + 18}" y="${fmt(cbar(v) + 4)}">${esc(cbar.tickFormat(5)(v))}</text>`);
  }
}

/** The legend: an entry per named trace, when shown. */
function drawLegend(f: Frame, out: string[]): void {
  const { colorOf, legend, showLegend, legendWidth, width, margin, box } = f;
  if (showLegend) {
    const lx = width - margin.r - legendWidth + 10;
    legend.forEach((t, k) => {
      const ly = box.y0 + 8 + k * 18;
      const color = colorOf.get(t)!;
      const opacity = num(t.opacity) ?? 1;
      if (t.type === "bar" || t.type === "histogram")
        out.push(`<rect x="${lx}" y="${ly - 5}" width="18" height="10" fill="${color}" fill-opacity="${opacity}"/>`);
      else {
        const mode = String(t.mode ?? "lines+markers");
        const dash = DASHES[((t.line ?? {}) as { dash?: string }).dash ?? "solid"];
        if (mode.includes("lines"))
          out.push(
            `<line x1="${lx}" x2="${lx + 18}" y1="${ly}" y2="${ly}" stroke="${color}" ` +
              `stroke-width="2"${dash ? ` stroke-dasharray="${dash}"` : ""}/>`,
          );
        if (mode.includes("markers")) out.push(`<circle cx="${lx + 9}" cy="${ly}" r="3" fill="${color}"/>`);
      }
      out.push(`<text x="${lx + 24}" y="${ly + 4}">${esc(String(t.name))}</text>`);
    });
  }
}

/** A heatmap trace's range of values (its zmin and zmax, else the data's) and its colour as a function of t in [0, 1]. */
function heatScale(t: Trace): { zmin: number; zmax: number; scale: (t: number) => string } {
  const zs = (t.z as (number | null)[][])
    .flat()
    .map(num)
    .filter((v): v is number => v !== undefined);
  const named = COLORSCALES[String(t.colorscale ?? "Viridis")];
  return {
    zmin: num(t.zmin) ?? Math.min(...zs),
    zmax: num(t.zmax) ?? Math.max(...zs),
    scale: t.reversescale ? (v) => named(1 - v) : named,
  };
}

/** Every k-th label so that labels are at least `room` pixels apart. */
function thin(labels: string[], slots: number): string[] {
  const step = Math.max(1, Math.ceil(labels.length / Math.max(1, Math.floor(slots))));
  return labels.filter((_, i) => i % step === 0);
}

/** Widen one axis's domain so that a unit has the same length on x and y (plotly's `scaleanchor`). */
function equalScales(
  x: ScaleLinear<number, number>,
  y: ScaleLinear<number, number>,
  box: { x0: number; x1: number; y0: number; y1: number },
): void {
  const [xa, xb] = x.domain();
  const [ya, yb] = y.domain();
  const perX = (xb - xa) / (box.x1 - box.x0);
  const perY = (yb - ya) / (box.y1 - box.y0);
  if (perX > perY) {
    const half = (perX * (box.y1 - box.y0)) / 2;
    y.domain([(ya + yb) / 2 - half, (ya + yb) / 2 + half]);
  } else {
    const half = (perY * (box.x1 - box.x0)) / 2;
    x.domain([(xa + xb) / 2 - half, (xa + xb) / 2 + half]);
  }
}
