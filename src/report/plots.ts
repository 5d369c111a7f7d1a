// The project's figures as plotly.js specs ({ data, layout }). The same specs go to notebooks
// (as a rich output bundle) and into the CLI's report.html.
import { RESID_HOOKS } from "../hooks.ts";

export interface Figure {
  data: Record<string, unknown>[];
  layout: Record<string, unknown>;
}

const base = (title: string, x: string, y: string): Record<string, unknown> => ({
  title: { text: title },
  xaxis: { title: { text: x } },
  yaxis: { title: { text: y } },
  margin: { l: 60, r: 20, t: 50, b: 50 },
  height: 380,
});

/** For plotly: the legend in a row between the title and the plot, where it covers neither a right axis nor the data. */
const legendAbove = {
  legend: { orientation: "h", x: 0, xanchor: "left", y: 1.02, yanchor: "bottom" },
  margin: { l: 60, r: 60, t: 100, b: 50 },
};

/** The design card's plot: the norm of mean(harmful) - mean(harmless) by layer, one line per hook. */
export function directionNormsFigure(
  directions: readonly { layer: number; hook: string; tokenOffset: number; norm: number }[],
  tokenOffset = -1,
): Figure {
  const data = RESID_HOOKS.filter((h) => directions.some((d) => d.hook === h)).map((hook) => {
    const ds = directions.filter((d) => d.hook === hook && d.tokenOffset === tokenOffset).sort((a, b) => a.layer - b.layer);
    return { type: "scatter", mode: "lines+markers", name: hook, x: ds.map((d) => d.layer), y: ds.map((d) => d.norm) };
  });
  return {
    data,
    layout: base(`Refusal direction norm by layer (token offset ${tokenOffset})`, "layer", "‖mean(harmful) − mean(harmless)‖"),
  };
}

/**
 * The strength each layer's attention and MLP output is edited with (an edit record's kernel strengths, or
 * any per-layer strengths): heretic's kernels as lines over the layers, 0 where a layer is not edited.
 */
export function strengthKernelFigure(
  strengths: { attention: readonly number[]; mlp: readonly number[] },
  title = "Edit strength by layer",
): Figure {
  const trace = (name: string, ys: readonly number[]) => ({
    type: "scatter",
    mode: "lines+markers",
    name,
    x: ys.map((_, l) => l),
    y: [...ys],
  });
  return {
    data: [trace("attention (o_proj)", strengths.attention), trace("MLP (down_proj)", strengths.mlp)],
    layout: { ...base(title, "layer", "strength λ (0: not edited)"), ...legendAbove },
  };
}

/** Cosine similarity between layers' directions (one hook point). */
export function cosineHeatmapFigure(layers: readonly number[], matrix: readonly (readonly number[])[], hook: string): Figure {
  return {
    // The values written on the cells: a colour alone is read differently by each renderer and reader.
    data: [
      {
        type: "heatmap",
        x: layers,
        y: layers,
        z: matrix,
        zmin: -1,
        zmax: 1,
        colorscale: "RdBu",
        reversescale: true,
        name: "cosine",
        texttemplate: "%{z:.2f}",
      },
    ],
    layout: { ...base(`Cosine similarity of ${hook} directions between layers`, "layer", "layer"), height: 420 },
  };
}

/**
 * The paper's selection scores per candidate, by layer: bypass, induce and KL; with `reference`, as in the
 * paper's figures, the refusal scores of harmful and harmless prompts without intervention and the KL threshold.
 */
export function selectionScoresFigure(
  candidates: readonly { layer: number; hook: string; bypass: number; induce: number; kl: number }[],
  reference?: { harmfulRefusalScore: number; harmlessRefusalScore: number; klThreshold: number },
): Figure {
  const data: Record<string, unknown>[] = [];
  for (const hook of RESID_HOOKS) {
    const cs = candidates.filter((c) => c.hook === hook).sort((a, b) => a.layer - b.layer);
    if (cs.length === 0) continue;
    data.push({ type: "scatter", mode: "lines+markers", name: `bypass (${hook})`, x: cs.map((c) => c.layer), y: cs.map((c) => c.bypass) });
    data.push({
      type: "scatter",
      mode: "lines+markers",
      name: `induce (${hook})`,
      x: cs.map((c) => c.layer),
      y: cs.map((c) => c.induce),
      line: { dash: "dot" },
    });
    data.push({
      type: "scatter",
      mode: "lines+markers",
      name: `KL (${hook})`,
      x: cs.map((c) => c.layer),
      y: cs.map((c) => c.kl),
      yaxis: "y2",
      line: { dash: "dash" },
    });
  }
  // The reference lines last, so that the scores keep plotly's default colours.
  if (reference && candidates.length > 0) {
    const layers = candidates.map((c) => c.layer);
    const span = [Math.min(...layers), Math.max(...layers)];
    data.push({
      type: "scatter",
      mode: "lines",
      name: "harmful, no intervention",
      x: span,
      y: span.map(() => reference.harmfulRefusalScore),
      line: { dash: "dash", color: "#555555" },
    });
    data.push({
      type: "scatter",
      mode: "lines",
      name: "harmless, no intervention",
      x: span,
      y: span.map(() => reference.harmlessRefusalScore),
      line: { dash: "dot", color: "#555555" },
    });
    data.push({
      type: "scatter",
      mode: "lines",
      name: `KL threshold ${reference.klThreshold}`,
      x: span,
      y: span.map(() => reference.klThreshold),
      yaxis: "y2",
      line: { dash: "dashdot", color: "#555555", width: 1 },
    });
  }
  return {
    data,
    layout: {
      ...base("Selection scores by layer (lower bypass is better; KL ≤ 0.1, induce ≥ 0)", "layer", "refusal score"),
      // Up to twelve entries: below the plot, where they cover neither the title nor the right axis.
      legend: { orientation: "h", x: 0, xanchor: "left", y: -0.22, yanchor: "top" },
      margin: { l: 60, r: 60, t: 50, b: 170 },
      // Ticks of its own: an overlaying axis otherwise takes the left axis's grid lines (0.0117, 0.0257, ...).
      yaxis2: { title: { text: "KL" }, overlaying: "y", side: "right", tickmode: "auto", nticks: 6 },
      height: 560,
    },
  };
}

/** Refusal rate under each evaluated candidate's ablation, and its coherent compliance where measured. */
export function candidateRefusalFigure(
  candidates: readonly { key: string; refusalRate: number; coherentCompliance?: number }[],
  baseline?: number,
  /** How refusals were counted, said in the title: the baseline must be counted the same way. */
  metric = "refusal substrings",
): Figure {
  const data: Record<string, unknown>[] = [
    { type: "bar", name: "refusal rate with ablation", x: candidates.map((c) => c.key), y: candidates.map((c) => c.refusalRate) },
  ];
  if (candidates.every((c) => c.coherentCompliance !== undefined)) {
    data.push({
      type: "bar",
      name: "coherent compliance with ablation",
      x: candidates.map((c) => c.key),
      y: candidates.map((c) => c.coherentCompliance),
    });
  }
  if (baseline !== undefined)
    data.push({
      type: "scatter",
      mode: "lines",
      name: "no intervention",
      x: candidates.map((c) => c.key),
      y: candidates.map(() => baseline),
      line: { dash: "dash" },
    });
  return {
    data,
    layout: {
      ...base(`Harmful refusal rate per candidate direction (${metric})`, "candidate", "share of harmful requests"),
      ...legendAbove,
      margin: { l: 60, r: 20, t: 100, b: 60 },
      height: 460,
      xaxis: { title: { text: "candidate" }, automargin: true, tickangle: -30 },
      yaxis: { title: { text: "share of harmful requests" }, range: [0, 1] },
    },
  };
}

/** Refusal rate before and after abliteration, harmful and harmless. */
export function beforeAfterFigure(
  before: { harmfulRefusalRate: number; harmlessRefusalRate: number },
  after: { harmfulRefusalRate: number; harmlessRefusalRate: number },
): Figure {
  return {
    data: [
      { type: "bar", name: "before", x: ["harmful", "harmless"], y: [before.harmfulRefusalRate, before.harmlessRefusalRate] },
      { type: "bar", name: "after", x: ["harmful", "harmless"], y: [after.harmfulRefusalRate, after.harmlessRefusalRate] },
    ],
    layout: {
      ...base("Refusal rate before and after abliteration (test split)", "instructions", "refusal rate"),
      barmode: "group",
      yaxis: { title: { text: "refusal rate" }, range: [0, 1] },
    },
  };
}

/**
 * Histograms of harmful and harmless activations projected on the chosen direction. `title` names the model
 * they come from; `range` fixes the x axis (to draw two models' histograms on the same scale).
 */
export function projectionFigure(
  harmful: readonly number[],
  harmless: readonly number[],
  label: string,
  options: { title?: string; range?: [number, number] } = {},
): Figure {
  const layout: Record<string, unknown> = {
    ...base(options.title ?? `Activations projected on the refusal direction (${label})`, "projection on the unit direction", "prompts"),
    barmode: "overlay",
  };
  // With a fixed axis, fixed bins too (30 across it), so that two models' histograms compare bar by bar.
  const bins = options.range
    ? { xbins: { start: options.range[0], end: options.range[1], size: (options.range[1] - options.range[0]) / 30 } }
    : {};
  if (options.range) layout.xaxis = { title: { text: "projection on the unit direction" }, range: options.range };
  return {
    data: [
      { type: "histogram", name: "harmful", x: harmful, opacity: 0.6, ...bins },
      { type: "histogram", name: "harmless", x: harmless, opacity: 0.6, ...bins },
    ],
    layout,
  };
}

/**
 * The ablation x - (x . r) r in two dimensions: each prompt's activation in the plane of the unit direction
 * (x axis) and the largest variance orthogonal to it (y axis), moved along the direction to the line x = 0.
 * Points are [along r, along the other axis]; both axes on the same scale, so the geometry is true.
 */
export function ablationPictureFigure(
  points: { harmful: readonly (readonly number[])[]; harmless: readonly (readonly number[])[] },
  label: string,
): Figure {
  const all = [...points.harmful, ...points.harmless];
  const segments = { x: all.flatMap(([a]) => [a, 0, null]), y: all.flatMap(([, b]) => [b, b, null]) };
  return {
    data: [
      { type: "scatter", mode: "lines", name: "removed: (x · r̂) r̂", ...segments, line: { dash: "dot", color: "#9a9a9a", width: 1 } },
      {
        type: "scatter",
        mode: "markers",
        name: "harmful x",
        x: points.harmful.map(([a]) => a),
        y: points.harmful.map(([, b]) => b),
        marker: { color: "#d62728", size: 7 },
      },
      {
        type: "scatter",
        mode: "markers",
        name: "harmless x",
        x: points.harmless.map(([a]) => a),
        y: points.harmless.map(([, b]) => b),
        marker: { color: "#1f77b4", size: 7 },
      },
      {
        type: "scatter",
        mode: "markers",
        name: "x − (x · r̂) r̂",
        x: all.map(() => 0),
        y: all.map(([, b]) => b),
        marker: { color: "#2ca02c", size: 5 },
      },
    ],
    layout: {
      ...base(`Ablation in the plane of r̂ (${label})`, "x · r̂ (along the refusal direction)", "along the largest variance ⟂ r̂"),
      yaxis: { title: { text: "along the largest variance ⟂ r̂" }, scaleanchor: "x" },
      height: 460,
    },
  };
}

/** Activations of two groups of prompts as points on two given axes (principal components, say). */
export function activationScatterFigure(
  groups: readonly { name: string; points: readonly (readonly number[])[] }[],
  title: string,
  axes: [string, string],
  ranges?: { x: [number, number]; y: [number, number] },
): Figure {
  const colors = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd"];
  return {
    data: groups.map((g, i) => ({
      type: "scatter",
      mode: "markers",
      name: g.name,
      x: g.points.map(([a]) => a),
      y: g.points.map(([, b]) => b),
      marker: { color: colors[i % colors.length], size: 7 },
      opacity: 0.8,
    })),
    layout: {
      ...base(title, axes[0], axes[1]),
      ...(ranges ? { xaxis: { title: { text: axes[0] }, range: ranges.x }, yaxis: { title: { text: axes[1] }, range: ranges.y } } : {}),
      height: 420,
    },
  };
}

/** Healing: the DPO loss and the share of pairs whose chosen answer gains more reward, by optimizer step. */
export function dpoTrainingFigure(history: readonly { step: number; loss: number; rewardAccuracy: number }[]): Figure {
  return {
    data: [
      { type: "scatter", mode: "lines+markers", name: "DPO loss", x: history.map((h) => h.step), y: history.map((h) => h.loss) },
      {
        type: "scatter",
        mode: "lines",
        name: "reward accuracy",
        x: history.map((h) => h.step),
        y: history.map((h) => h.rewardAccuracy),
        yaxis: "y2",
      },
    ],
    layout: {
      ...base("Healing: DPO loss by step (ln 2 = 0.693 at the start)", "optimizer step", "loss"),
      ...legendAbove,
      yaxis2: { title: { text: "reward accuracy" }, overlaying: "y", side: "right", range: [0, 1], tickvals: [0, 0.25, 0.5, 0.75, 1] },
    },
  };
}

/**
 * A search's trials in the plane of its two objectives (harmful refusal rate, harmless KL): every trial, the
 * Pareto front's trials highlighted, the model without intervention, and any reference edits.
 */
export function paretoFigure(
  trials: readonly { trial: number; refusal: number; kl: number }[],
  front: readonly number[],
  baseline?: { refusal: number; kl: number },
  references: readonly { label: string; refusal: number; kl: number }[] = [],
): Figure {
  const onFront = new Set(front);
  const others = trials.filter((t) => !onFront.has(t.trial));
  const best = trials.filter((t) => onFront.has(t.trial)).sort((a, b) => a.refusal - b.refusal || a.kl - b.kl);
  const points = (name: string, ts: readonly { trial: number; refusal: number; kl: number }[], marker: Record<string, unknown>) => ({
    type: "scatter",
    mode: "markers",
    name,
    x: ts.map((t) => t.refusal),
    y: ts.map((t) => t.kl),
    text: ts.map((t) => `trial ${t.trial}`),
    marker,
  });
  const data: Record<string, unknown>[] = [
    points("trials", others, { size: 8, color: "#7fa7d9" }),
    points("Pareto front", best, { size: 10, color: "#d1495b" }),
  ];
  if (baseline)
    data.push({
      type: "scatter",
      mode: "markers",
      name: "no intervention",
      x: [baseline.refusal],
      y: [baseline.kl],
      marker: { size: 11, color: "#222" },
    });
  // Colours apart from the front's red and the trials' light blue, so a reference is never read as a trial.
  const referenceColours = ["#2a9d8f", "#e9a23b", "#6a4c93", "#8a5a44"];
  references.forEach((r, i) =>
    data.push({
      type: "scatter",
      mode: "markers",
      name: r.label,
      x: [r.refusal],
      y: [r.kl],
      marker: { size: 11, color: referenceColours[i % referenceColours.length] },
    }),
  );
  return {
    data,
    layout: {
      ...base("Search trials: refusals against harmless damage", "harmful refusal rate", "harmless KL (original ‖ edited)"),
      ...legendAbove,
      xaxis: { title: { text: "harmful refusal rate" }, range: [-0.03, 1.03] },
      height: 460,
    },
  };
}

/**
 * How one parameter of a search's trials relates to its two objectives: each trial's refusal rate (left axis) and
 * harmless KL (right axis) against the parameter's value.
 */
export function trialParameterFigure(
  trials: readonly { trial: number; refusal: number; kl: number; params: Record<string, unknown> }[],
  parameter: string,
): Figure {
  const withValue = trials.filter((t) => typeof t.params[parameter] === "number");
  if (withValue.length === 0) throw new Error(`trialParameterFigure: no trial has a number for ${parameter}`);
  const x = withValue.map((t) => t.params[parameter] as number);
  const text = withValue.map((t) => `trial ${t.trial}`);
  return {
    data: [
      {
        type: "scatter",
        mode: "markers",
        name: "harmful refusal rate",
        x,
        y: withValue.map((t) => t.refusal),
        text,
        marker: { color: "#d1495b" },
      },
      {
        type: "scatter",
        mode: "markers",
        name: "harmless KL",
        x,
        y: withValue.map((t) => t.kl),
        text,
        yaxis: "y2",
        marker: { color: "#2a9d8f" },
      },
    ],
    layout: {
      ...base(`Trials by ${parameter}`, parameter, "harmful refusal rate"),
      ...legendAbove,
      yaxis: { title: { text: "harmful refusal rate" }, range: [-0.03, 1.03] },
      yaxis2: { title: { text: "harmless KL" }, overlaying: "y", side: "right", tickmode: "auto", nticks: 6 },
    },
  };
}
