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

/** The design card's plot: the norm of mean(harmful) - mean(harmless) by layer, one line per hook. */
export function directionNormsFigure(directions: readonly { layer: number; hook: string; tokenOffset: number; norm: number }[], tokenOffset = -1): Figure {
  const data = RESID_HOOKS.filter((h) => directions.some((d) => d.hook === h)).map((hook) => {
    const ds = directions.filter((d) => d.hook === hook && d.tokenOffset === tokenOffset).sort((a, b) => a.layer - b.layer);
    return { type: "scatter", mode: "lines+markers", name: hook, x: ds.map((d) => d.layer), y: ds.map((d) => d.norm) };
  });
  return { data, layout: base(`Refusal direction norm by layer (token offset ${tokenOffset})`, "layer", "‖mean(harmful) − mean(harmless)‖") };
}

/** Cosine similarity between layers' directions (one hook point). */
export function cosineHeatmapFigure(layers: readonly number[], matrix: readonly (readonly number[])[], hook: string): Figure {
  return {
    data: [{ type: "heatmap", x: layers, y: layers, z: matrix, zmin: -1, zmax: 1, colorscale: "RdBu", reversescale: true, name: "cosine" }],
    layout: { ...base(`Cosine similarity of ${hook} directions between layers`, "layer", "layer"), height: 420 },
  };
}

/** The paper's selection scores per candidate, by layer: bypass, induce and KL. */
export function selectionScoresFigure(candidates: readonly { layer: number; hook: string; bypass: number; induce: number; kl: number }[]): Figure {
  const data: Record<string, unknown>[] = [];
  for (const hook of RESID_HOOKS) {
    const cs = candidates.filter((c) => c.hook === hook).sort((a, b) => a.layer - b.layer);
    if (cs.length === 0) continue;
    data.push({ type: "scatter", mode: "lines+markers", name: `bypass (${hook})`, x: cs.map((c) => c.layer), y: cs.map((c) => c.bypass) });
    data.push({ type: "scatter", mode: "lines+markers", name: `induce (${hook})`, x: cs.map((c) => c.layer), y: cs.map((c) => c.induce), line: { dash: "dot" } });
    data.push({ type: "scatter", mode: "lines+markers", name: `KL (${hook})`, x: cs.map((c) => c.layer), y: cs.map((c) => c.kl), yaxis: "y2", line: { dash: "dash" } });
  }
  return {
    data,
    layout: { ...base("Selection scores by layer (lower bypass is better; KL ≤ 0.1, induce ≥ 0)", "layer", "refusal score"), yaxis2: { title: { text: "KL" }, overlaying: "y", side: "right" }, height: 420 },
  };
}

/** Refusal rate under each evaluated candidate's ablation, and its coherent compliance where measured. */
export function candidateRefusalFigure(candidates: readonly { key: string; refusalRate: number; coherentCompliance?: number }[], baseline?: number): Figure {
  const data: Record<string, unknown>[] = [{ type: "bar", name: "refusal rate with ablation", x: candidates.map((c) => c.key), y: candidates.map((c) => c.refusalRate) }];
  if (candidates.every((c) => c.coherentCompliance !== undefined)) {
    data.push({ type: "bar", name: "coherent compliance with ablation", x: candidates.map((c) => c.key), y: candidates.map((c) => c.coherentCompliance) });
  }
  if (baseline !== undefined) data.push({ type: "scatter", mode: "lines", name: "no intervention", x: candidates.map((c) => c.key), y: candidates.map(() => baseline), line: { dash: "dash" } });
  return { data, layout: { ...base("Harmful refusal rate per candidate direction", "candidate", "share of harmful requests"), yaxis: { title: { text: "share of harmful requests" }, range: [0, 1] } } };
}

/** Refusal rate before and after abliteration, harmful and harmless. */
export function beforeAfterFigure(before: { harmfulRefusalRate: number; harmlessRefusalRate: number }, after: { harmfulRefusalRate: number; harmlessRefusalRate: number }): Figure {
  return {
    data: [
      { type: "bar", name: "before", x: ["harmful", "harmless"], y: [before.harmfulRefusalRate, before.harmlessRefusalRate] },
      { type: "bar", name: "after", x: ["harmful", "harmless"], y: [after.harmfulRefusalRate, after.harmlessRefusalRate] },
    ],
    layout: { ...base("Refusal rate before and after abliteration (test split)", "instructions", "refusal rate"), barmode: "group", yaxis: { title: { text: "refusal rate" }, range: [0, 1] } },
  };
}

/** Histograms of harmful and harmless activations projected on the chosen direction. */
export function projectionFigure(harmful: readonly number[], harmless: readonly number[], label: string): Figure {
  return {
    data: [
      { type: "histogram", name: "harmful", x: harmful, opacity: 0.6 },
      { type: "histogram", name: "harmless", x: harmless, opacity: 0.6 },
    ],
    layout: { ...base(`Activations projected on the refusal direction (${label})`, "projection on the unit direction", "prompts"), barmode: "overlay" },
  };
}

/** Healing: the DPO loss and the share of pairs whose chosen answer gains more reward, by optimizer step. */
export function dpoTrainingFigure(history: readonly { step: number; loss: number; rewardAccuracy: number }[]): Figure {
  return {
    data: [
      { type: "scatter", mode: "lines+markers", name: "DPO loss", x: history.map((h) => h.step), y: history.map((h) => h.loss) },
      { type: "scatter", mode: "lines", name: "reward accuracy", x: history.map((h) => h.step), y: history.map((h) => h.rewardAccuracy), yaxis: "y2" },
    ],
    layout: { ...base("Healing: DPO loss by step (ln 2 = 0.693 at the start)", "optimizer step", "loss"), yaxis2: { title: { text: "reward accuracy" }, overlaying: "y", side: "right", range: [0, 1] } },
  };
}
