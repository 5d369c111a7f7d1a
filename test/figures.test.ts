// The static pictures of the figures (src/report/static-svg.ts) and the LoRA picture: what they draw is
// what the data says, every project figure has one, and what they cannot draw is refused by name.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  ablationPictureFigure,
  activationScatterFigure,
  beforeAfterFigure,
  candidateRefusalFigure,
  strengthKernelFigure,
  cosineHeatmapFigure,
  directionNormsFigure,
  dpoTrainingFigure,
  projectionFigure,
  selectionScoresFigure,
  type Figure,
} from "../src/report/plots.ts";
import { figureSvg } from "../src/report/static-svg.ts";
import { loraPictureSvg } from "../src/report/lora-picture.ts";
import { coordinates, principalComponents } from "../src/pipeline/projections.ts";
import { PNG } from "pngjs";

/** The SVG elements of one trace's group, with their attributes. */
function marks(svg: string, trace: number): { tag: string; attrs: Record<string, string> }[] {
  const lines = svg.split("\n");
  const start = lines.indexOf(`<g data-trace="${trace}">`);
  assert.ok(start >= 0, `trace ${trace} is not drawn`);
  let depth = 0;
  let end = start;
  do {
    depth += (lines[end].match(/<g[ >]/g) ?? []).length - (lines[end].match(/<\/g>/g) ?? []).length;
    end++;
  } while (depth > 0 && end < lines.length);
  const body = lines.slice(start, end).join("\n");
  return [...body.matchAll(/<(rect|circle|path|text)\s([^>]*?)\/?>/g)].map((m) => ({
    tag: m[1],
    attrs: Object.fromEntries([...m[2].matchAll(/([\w-]+)="([^"]*)"/g)].map((a) => [a[1], a[2]])),
  }));
}

const num = (s: string | undefined) => Number(s);

describe("static pictures of figures", () => {
  it("draws bars with heights in proportion to their values", () => {
    const svg = figureSvg(
      beforeAfterFigure({ harmfulRefusalRate: 1, harmlessRefusalRate: 0.5 }, { harmfulRefusalRate: 0.25, harmlessRefusalRate: 0 }),
    );
    const before = marks(svg, 0).filter((m) => m.tag === "rect");
    const after = marks(svg, 1).filter((m) => m.tag === "rect");
    assert.equal(before.length, 2);
    assert.equal(after.length, 1, "a zero bar draws nothing");
    const h = (m: { attrs: Record<string, string> }) => num(m.attrs.height);
    assert.ok(Math.abs(h(before[1]) / h(before[0]) - 0.5) < 1e-3, `${h(before[1])} / ${h(before[0])}`);
    assert.ok(Math.abs(h(after[0]) / h(before[0]) - 0.25) < 1e-3);
    // grouped: the two series sit side by side in the "harmful" band, the second to the right of the first
    assert.ok(num(after[0].attrs.x) > num(before[0].attrs.x));
  });

  it("bins histograms on shared bins and draws counts", () => {
    const svg = figureSvg(projectionFigure([1, 1, 1, 2], [1.5], "test"));
    const harmful = marks(svg, 0).filter((m) => m.tag === "rect");
    const harmless = marks(svg, 1).filter((m) => m.tag === "rect");
    assert.equal(harmful.length, 2, "two non-empty bins");
    assert.equal(harmless.length, 1);
    const heights = harmful.map((m) => num(m.attrs.height)).sort((a, b) => a - b);
    assert.ok(Math.abs(heights[1] / heights[0] - 3) < 1e-3, `counts 3 and 1, heights ${heights}`);
    assert.ok(Math.abs(num(harmless[0].attrs.height) - heights[0]) < 1e-6, "a count of 1 is as tall in both");
  });

  it("uses the bins a histogram fixes, on the axis it fixes", () => {
    const svg = figureSvg(projectionFigure([0.05, 0.06, 2.95], [4], "test", { range: [0, 3] }));
    const rects = marks(svg, 0).filter((m) => m.tag === "rect");
    assert.equal(rects.length, 2);
    assert.ok(Math.abs(num(rects[0].attrs.height) / num(rects[1].attrs.height) - 2) < 1e-3);
    assert.equal(marks(svg, 1).filter((m) => m.tag === "rect").length, 0, "a value outside the bins is not counted");
    const width = num(rects[0].attrs.width) + 1; // one pixel of gap between bars
    const plot = svg.match(/<rect x="[\d.]+" y="[\d.]+" width="([\d.]+)" height="[\d.]+" fill="none"/)!;
    assert.ok(Math.abs(width * 30 - num(plot[1])) < 1e-3, "30 bins across the fixed axis");
    assert.throws(() => figureSvg({ data: [{ type: "histogram", x: [1], xbins: { start: 1, end: 0, size: 1 } }], layout: {} }), /xbins/);
  });

  it("leaves empty heatmap cells empty and draws a colour bar", () => {
    const svg = figureSvg(
      cosineHeatmapFigure(
        [0, 1],
        [
          [null as unknown as number, 0.5],
          [0.5, 1],
        ],
        "resid_pre",
      ),
    );
    const cells = marks(svg, 0).filter((m) => m.tag === "rect");
    assert.equal(cells.length, 3, "the null cell (a zero direction) is not drawn as cosine 0");
    const colour = (v: number) => cells.find((c) => c.attrs.fill === cells[v].attrs.fill);
    assert.ok(colour(0) && cells[0].attrs.fill === cells[1].attrs.fill, "equal values, equal colours");
    assert.notEqual(cells[0].attrs.fill, cells[2].attrs.fill);
    assert.ok(svg.includes(">1.0<") && svg.includes(">−1.0<"), "the colour bar's ends are labelled");
  });

  it("breaks lines at missing values and puts ablated points on the line x = 0", () => {
    const svg = figureSvg(
      ablationPictureFigure(
        {
          harmful: [
            [2, 1],
            [3, -1],
          ],
          harmless: [[-1, 0.5]],
        },
        "test",
      ),
    );
    const segments = marks(svg, 0).find((m) => m.tag === "path")!;
    assert.equal(segments.attrs.d.match(/M/g)?.length, 3, "one segment per point");
    const ablated = marks(svg, 3).filter((m) => m.tag === "circle");
    assert.equal(ablated.length, 3);
    assert.equal(new Set(ablated.map((c) => c.attrs.cx)).size, 1, "every ablated point has x . r = 0");
    const harmful = marks(svg, 1).filter((m) => m.tag === "circle");
    // equal scales: one unit along x is as long as one unit along y
    const dx = (num(harmful[1].attrs.cx) - num(harmful[0].attrs.cx)) / 1;
    const dy = (num(harmful[1].attrs.cy) - num(harmful[0].attrs.cy)) / 2; // y falls by 2 units, the pixel row grows
    assert.ok(Math.abs(dx - dy) < 1e-6, `${dx} px per unit on x, ${dy} on y`);
  });

  it("draws every figure the project makes, with its title and legend", () => {
    const hooks = ["resid_pre", "resid_mid", "resid_post"];
    const figures: Figure[] = [
      directionNormsFigure(hooks.flatMap((hook) => [0, 1, 2].map((layer) => ({ layer, hook, tokenOffset: -1, norm: layer + 1 })))),
      selectionScoresFigure(
        [1, 2].map((layer) => ({ layer, hook: "resid_pre", bypass: -layer, induce: layer, kl: 0.05 * layer })),
        { harmfulRefusalScore: 3, harmlessRefusalScore: -4, klThreshold: 0.1 },
      ),
      candidateRefusalFigure([{ key: "blocks.1.hook_resid_pre@-1", refusalRate: 0.1, coherentCompliance: 0.9 }], 0.95),
      strengthKernelFigure({ attention: [0, 0.6, 1, 0.6], mlp: [1, 0.75, 0.5, 0] }),
      dpoTrainingFigure([1, 2, 3].map((step) => ({ step, loss: 0.7 / step, rewardAccuracy: step / 3 }))),
      activationScatterFigure(
        [
          { name: "harmful", points: [[1, 2]] },
          { name: "harmless", points: [[0, 1]] },
        ],
        "PCA",
        ["PC 1", "PC 2"],
      ),
    ];
    for (const f of figures) {
      const svg = figureSvg(f);
      assert.ok(svg.startsWith("<svg") && svg.endsWith("</svg>"));
      assert.ok(
        svg.includes((f.layout.title as { text: string }).text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")),
        "title",
      );
      for (const [i, t] of f.data.entries())
        if (t.name)
          assert.ok(
            svg.includes(`>${String(t.name).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")}<`),
            `legend entry of trace ${i}`,
          );
      for (const [i, t] of f.data.entries())
        assert.ok(
          marks(svg, i).some((m) => m.tag !== "text"),
          `trace ${i} ("${t.name}") drew nothing`,
        );
    }
  });

  it("refuses what it cannot draw, by name", () => {
    const base = { layout: { title: { text: "x" } } };
    assert.throws(() => figureSvg({ ...base, data: [{ type: "pie", values: [1] }] }), /trace 0 of type "pie"/);
    assert.throws(() => figureSvg({ data: [], layout: { shapes: [{}] } }), /layout\.shapes/);
    assert.throws(() => figureSvg({ ...base, data: [{ type: "heatmap", z: [[1]], colorscale: "Jet" }] }), /colorscale "Jet"/);
    assert.throws(
      () => figureSvg({ ...base, data: [{ type: "scatter", x: [1], y: [1], marker: { color: ["red"] } }] }),
      /marker\.color array/,
    );
    assert.throws(() => figureSvg({ data: [], layout: { xaxis: { type: "log" } } }), /xaxis\.type "log"/);
    assert.throws(() => figureSvg({ data: [{ type: "scatter", x: [1], y: [1] }], layout: { width: 60 } }), /plot area/);
  });

  it("escapes text", () => {
    const svg = figureSvg({
      data: [{ type: "scatter", name: "<b>&", x: [1], y: [1] }],
      layout: { title: { text: "a < b & c" }, showlegend: true },
    });
    assert.ok(svg.includes("a &lt; b &amp; c") && svg.includes("&lt;b&gt;&amp;") && !svg.includes("<b>"));
  });
});

describe("the LoRA picture", () => {
  const out = 6;
  const inF = 5;
  const rank = 2;
  const weight = Float32Array.from({ length: out * inF }, (_, i) => Math.sin(i));
  const a = Float32Array.from({ length: rank * inF }, (_, i) => Math.cos(i));
  const b = Float32Array.from({ length: out * rank }, (_, i) => (i % 3) - 1);

  it("draws W, B, A and their product to scale", () => {
    const svg = loraPictureSvg({ key: "model.layers.0.self_attn.o_proj.weight", weight, out, inFeatures: inF, a, b, rank, scaling: 2 });
    // four images of one pixel per entry, drawn to scale (cell pixels per entry)
    const images = [
      ...svg.matchAll(/<image x="[\d.]+" y="[\d.]+" width="(\d+)" height="(\d+)"[^>]*href="data:image\/png;base64,([^"]+)"/g),
    ].map((m) => {
      const png = PNG.sync.read(Buffer.from(m[3], "base64"));
      return { width: Number(m[1]), height: Number(m[2]), cols: png.width, rows: png.height, png };
    });
    assert.deepEqual(
      images.map((i) => [i.rows, i.cols]),
      [
        [out, inF],
        [out, inF],
        [out, rank],
        [rank, inF],
      ],
    );
    const cell = images[0].width / inF;
    for (const i of images) assert.ok(i.width === i.cols * cell && i.height === i.rows * cell, "to scale");
    // W's largest positive entry is the reddest pixel, its largest negative the bluest
    const w = images[0].png;
    const at = (k: number) => [w.data[4 * k], w.data[4 * k + 2]];
    const [maxAt, minAt] = [weight.indexOf(Math.max(...weight)), weight.indexOf(Math.min(...weight))];
    assert.ok(at(maxAt)[0] > at(maxAt)[1] && at(minAt)[1] > at(minAt)[0], "red for positive, blue for negative");
    assert.ok(svg.includes("[6 × 2]") && svg.includes("[2 × 5]") && svg.includes("rank ≤ 2"));
    // the product's largest entry, as printed, is scaling * max |B A|
    let max = 0;
    for (let i = 0; i < out; i++)
      for (let j = 0; j < inF; j++) {
        let s = 0;
        for (let k = 0; k < rank; k++) s += b[i * rank + k] * a[k * inF + j];
        max = Math.max(max, Math.abs(2 * s));
      }
    assert.ok(svg.includes(`|Δw| ≤ ${max.toExponential(1)}`));
  });

  it("names the matrix whose size is wrong", () => {
    assert.throws(
      () => loraPictureSvg({ key: "k", weight, out, inFeatures: inF, a: a.subarray(1), b, rank, scaling: 1 }),
      /A of k has 9 values, expected \[2, 5\]/,
    );
    assert.throws(
      () => loraPictureSvg({ key: "k", weight, out: 7, inFeatures: inF, a, b, rank, scaling: 1 }),
      /k has 30 values, expected \[7, 5\]/,
    );
  });
});

describe("principal components", () => {
  it("finds the axis of largest variance, and the largest one orthogonal to an excluded direction", () => {
    // points spread 3 along e0, 2 along e1, 0.5 along e2
    const rows = [-1, 1].flatMap((s0) => [-1, 1].flatMap((s1) => [-1, 1].map((s2) => [3 * s0 + 10, 2 * s1, 0.5 * s2])));
    const pcs = principalComponents(rows, 2);
    assert.ok(Math.abs(Math.abs(pcs.components[0][0]) - 1) < 1e-9 && Math.abs(Math.abs(pcs.components[1][1]) - 1) < 1e-9);
    assert.ok(Math.abs(pcs.variances[0] - 9) < 1e-9 && Math.abs(pcs.variances[1] - 4) < 1e-9 && Math.abs(pcs.totalVariance - 13.25) < 1e-9);
    assert.ok(Math.abs(pcs.mean[0] - 10) < 1e-12);
    const without = principalComponents(rows, 1, { exclude: [1, 0, 0] });
    assert.ok(Math.abs(Math.abs(without.components[0][1]) - 1) < 1e-9, "e1 once e0 is excluded");
    assert.deepEqual(coordinates([[1, 2, 3]], [[0, 1, 0]], [0, 1, 0]), [[1]]);
  });

  it("rejects rows of different widths and impossible k", () => {
    assert.throws(() => principalComponents([[1, 2], [1]], 1), /row 1 has 1 values, row 0 has 2/);
    assert.throws(
      () =>
        principalComponents(
          [
            [1, 2],
            [3, 4],
          ],
          3,
        ),
      /k must be between 1 and 2/,
    );
    assert.throws(() => principalComponents([[1, 2]], 1), /at least 2 rows/);
  });
});

describe("figures in a notebook kernel", () => {
  it("sends one bundle (plotly, HTML with the static picture, SVG, text) through the tslab copy that runs the cell", async () => {
    const { createRequire } = await import("node:module");
    const { showFigure } = await import("../src/notebook/display.ts");
    const cache = createRequire(import.meta.url).cache;
    // Two copies of tslab, as when the kernel comes from one checkout and the notebooks' package from
    // another: only the one executing the cell has a writer.
    const sent: { data: Record<string, unknown> }[] = [];
    const idle = "/elsewhere/node_modules/tslab/dist/jupyter.js";
    const running = "/kernel/node_modules/tslab/dist/jupyter.js";
    cache[idle] = { exports: { lastWriteDisplayData: null } } as never;
    cache[running] = { exports: { lastWriteDisplayData: (content: { data: Record<string, unknown> }) => sent.push(content) } } as never;
    try {
      const figure = beforeAfterFigure(
        { harmfulRefusalRate: 1, harmlessRefusalRate: 0 },
        { harmfulRefusalRate: 0, harmlessRefusalRate: 0 },
      );
      showFigure(figure, "summary");
      assert.equal(sent.length, 1);
      const data = sent[0].data;
      assert.deepEqual(Object.keys(data), ["application/vnd.plotly.v1+json", "text/html", "image/svg+xml", "text/plain"]);
      assert.equal(data["image/svg+xml"], figureSvg(figure));
      assert.ok(
        String(data["text/html"]).includes(Buffer.from(figureSvg(figure)).toString("base64")),
        "the HTML fallback shows the same picture",
      );
      assert.equal(data["text/plain"], "summary");
    } finally {
      delete cache[idle];
      delete cache[running];
    }
  });
});
