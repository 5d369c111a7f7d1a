// The LoRA picture: one adapted weight as the layer computes it, W x + (alpha / rank) B A x, with the frozen
// W, the trained B [out, rank] and A [rank, in] and their product drawn to scale from the model's own values
// (the top-left corner of each, `crop` rows and columns), so that the low rank is seen: B is a thin column
// block, A a flat row block, and their product an update beside W that has at most `rank` independent rows.
import { rgb } from "d3-color";
import { interpolateRdBu } from "d3-scale-chromatic";
import { PNG } from "pngjs";
import { escapeMarkup } from "./markup.ts";

export interface LoraPictureInput {
  /** Checkpoint key of the weight, for the caption. */
  key: string;
  /** The frozen weight, [out, in] row-major. */
  weight: ArrayLike<number>;
  out: number;
  inFeatures: number;
  /** A, [rank, in] row-major. */
  a: ArrayLike<number>;
  /** B, [out, rank] row-major. */
  b: ArrayLike<number>;
  rank: number;
  /** alpha / rank. */
  scaling: number;
  /** Rows and columns of W and B A drawn (default 32). */
  crop?: number;
}

const esc = escapeMarkup;

/**
 * One matrix as a grid of cells coloured on a scale symmetric about zero (blue negative, red positive): a PNG
 * of one pixel per entry, drawn enlarged without smoothing (a few kilobytes where a rectangle per entry
 * would take hundreds).
 */
function grid(
  values: (i: number, j: number) => number,
  rows: number,
  cols: number,
  x: number,
  y: number,
  cell: number,
): { svg: string; max: number } {
  let max = 0;
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) max = Math.max(max, Math.abs(values(i, j)));
  const png = new PNG({ width: cols, height: rows, colorType: 2 });
  for (let i = 0; i < rows; i++)
    for (let j = 0; j < cols; j++) {
      const t = max > 0 ? 0.5 + values(i, j) / (2 * max) : 0.5;
      const { r, g, b } = rgb(interpolateRdBu(1 - t));
      const k = 4 * (i * cols + j);
      [png.data[k], png.data[k + 1], png.data[k + 2], png.data[k + 3]] = [r, g, b, 255];
    }
  const data = PNG.sync.write(png, { colorType: 2 }).toString("base64");
  const [w, h] = [cols * cell, rows * cell];
  return {
    svg:
      `<image x="${x}" y="${y}" width="${w}" height="${h}" preserveAspectRatio="none" style="image-rendering:pixelated" ` +
      `href="data:image/png;base64,${data}"/><rect x="${x}" y="${y}" width="${w}" height="${h}" fill="none" stroke="#444"/>`,
    max,
  };
}

export function loraPictureSvg(input: LoraPictureInput): string {
  const { out, inFeatures: inF, rank } = input;
  if (input.weight.length !== out * inF)
    throw new Error(`LoRA picture: ${input.key} has ${input.weight.length} values, expected [${out}, ${inF}]`);
  if (input.a.length !== rank * inF)
    throw new Error(`LoRA picture: A of ${input.key} has ${input.a.length} values, expected [${rank}, ${inF}]`);
  if (input.b.length !== out * rank)
    throw new Error(`LoRA picture: B of ${input.key} has ${input.b.length} values, expected [${out}, ${rank}]`);
  const rows = Math.min(input.crop ?? 32, out);
  const cols = Math.min(input.crop ?? 32, inF);
  const cell = Math.max(3, Math.min(6, Math.floor(160 / Math.max(rows, cols))));
  const top = 70;
  const w = (i: number, j: number) => input.weight[i * inF + j];
  const bVal = (i: number, k: number) => input.b[i * rank + k];
  const aVal = (k: number, j: number) => input.a[k * inF + j];
  const delta = (i: number, j: number) => {
    let s = 0;
    for (let k = 0; k < rank; k++) s += bVal(i, k) * aVal(k, j);
    return input.scaling * s;
  };
  const parts: string[] = [];
  let x = 20;
  const caption = (text: string, sub: string, cx: number, y: number) =>
    parts.push(
      `<text x="${cx}" y="${y}" text-anchor="middle" font-size="12">${esc(text)}</text><text x="${cx}" y="${y + 15}" ` +
        `text-anchor="middle" font-size="11" fill="#555">${esc(sub)}</text>`,
    );
  const sign = (s: string, cx: number) =>
    parts.push(`<text x="${cx}" y="${top + (rows * cell) / 2 + 8}" text-anchor="middle" font-size="24">${esc(s)}</text>`);
  const fmt = (v: number) => v.toExponential(1);

  // W + ΔW, then ΔW = (α/r) · B A.
  const gw = grid(w, rows, cols, x, top, cell);
  parts.push(gw.svg);
  caption("W, frozen", `[${out} × ${inF}], |w| ≤ ${fmt(gw.max)}`, x + (cols * cell) / 2, top + rows * cell + 20);
  x += cols * cell + 16;
  sign("+", x + 8);
  x += 28;
  const gd = grid(delta, rows, cols, x, top, cell);
  parts.push(gd.svg);
  caption(`ΔW, rank ≤ ${rank}`, `[${out} × ${inF}], |Δw| ≤ ${fmt(gd.max)}`, x + (cols * cell) / 2, top + rows * cell + 20);
  x += cols * cell + 30;
  parts.push(
    `<text x="${x}" y="${top + (rows * cell) / 2 + 6}" font-size="14">${esc(`ΔW = ${Number(input.scaling.toFixed(4))} ·`)}</text>`,
  );
  x += 78;
  const gb = grid(bVal, rows, rank, x, top, cell);
  parts.push(gb.svg);
  caption("B, trained", `[${out} × ${rank}]`, x + (rank * cell) / 2, top + rows * cell + 20);
  x += rank * cell + 10;
  const ga = grid(aVal, rank, cols, x, top, cell);
  parts.push(ga.svg);
  caption("A, trained", `[${rank} × ${inF}]`, x + (cols * cell) / 2, top + rank * cell + 20);
  x += cols * cell + 20;
  const title = `LoRA on ${input.key}: the layer computes (W + ΔW) x, ΔW = (α/r) B A`;
  const width = Math.max(x, 40 + title.length * 8);
  const height = top + rows * cell + 60;
  const note =
    rows < out || cols < inF
      ? `top-left ${rows} × ${cols} of each matrix; each on its own colour scale (blue negative, red positive)`
      : "each matrix on its own colour scale (blue negative, red positive)";
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
      `font-family="Helvetica, Arial, sans-serif">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="20" y="24" font-size="15">${esc(title)}</text>`,
    `<text x="20" y="44" font-size="11" fill="#555">${esc(note)}</text>`,
    ...parts,
    `</svg>`,
  ].join("\n");
}
