// report.html: the run's figures and tables in one self-contained page (plotly.js inlined, no CDN).
import { readFile } from "node:fs/promises";
import { writeFileAtomic } from "../files.ts";
import { createRequire } from "node:module";
import type { RunReport } from "./types.ts";
import { escapeMarkup } from "./markup.ts";
import {
  beforeAfterFigure,
  candidateRefusalFigure,
  cosineHeatmapFigure,
  directionNormsFigure,
  dpoTrainingFigure,
  paretoFigure,
  projectionFigure,
  selectionScoresFigure,
  type Figure,
} from "./plots.ts";
import type { HealMetrics, HealReport } from "../heal/types.ts";
import type { Study } from "../search/study.ts";
import { frontRows } from "../search/table.ts";

const require = createRequire(import.meta.url);

export async function plotlyScript(): Promise<string> {
  return readFile(require.resolve("plotly.js-dist-min"), "utf8");
}

const escape = escapeMarkup;
/** JSON safe inside a <script> element. */
export const scriptJson = (x: unknown) => JSON.stringify(x).replace(/</g, "\\u003c");

export function reportFigures(report: RunReport): Record<string, Figure> {
  return {
    norms: directionNormsFigure(report.directions, report.chosen.tokenOffset),
    cosine: cosineHeatmapFigure(report.cosine.layers, report.cosine.matrix, report.cosine.hook),
    selection: selectionScoresFigure(report.selection.candidates, {
      ...report.selection.baseline,
      klThreshold: report.selection.filters.klThreshold,
    }),
    candidates: candidateRefusalFigure(report.candidates, report.before.harmfulRefusalRate),
    beforeAfter: beforeAfterFigure(report.before, report.after),
    projections: projectionFigure(report.projections.harmful, report.projections.harmless, report.chosen.key),
  };
}

/** The evaluation splits beside the test split: a table of their measures, and their first answers. */
function splitTables(report: RunReport): string {
  if (report.splits.length === 0) return "";
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const arrow = (a: number, b: number) => `${pct(a)} → ${pct(b)}`;
  const measures = [
    {
      name: "test",
      n: `${report.counts.harmfulTest} + ${report.counts.harmlessTest}`,
      tokensPerWord: report.testTokensPerWord,
      before: report.before,
      after: report.after,
      unchanged: report.agreement.harmlessUnchanged.exact,
    },
    ...report.splits.map((s) => ({
      name: s.name,
      n: `${s.counts.harmful} + ${s.counts.harmless}`,
      tokensPerWord: s.tokensPerWord,
      before: s.before,
      after: s.after,
      unchanged: s.harmlessUnchanged.exact,
    })),
  ]
    .map(
      (m) =>
        `<tr><td>${escape(m.name)}</td><td>${m.n}</td><td>${m.tokensPerWord.toFixed(2)}</td>` +
        `<td>${arrow(m.before.harmfulRefusalRate, m.after.harmfulRefusalRate)}</td>` +
        `<td>${arrow(m.before.harmlessRefusalRate, m.after.harmlessRefusalRate)}</td><td>${m.after.harmlessKl.toFixed(4)}</td>` +
        `<td>${pct(m.unchanged)}</td><td>${arrow(m.before.topicMention, m.after.topicMention)}</td></tr>`,
    )
    .join("\n");
  const samples = report.splits
    .flatMap((s) =>
      s.samples.map(
        (x) =>
          `<tr><td>${escape(s.name)}, ${x.kind}</td><td>${escape(x.instruction)}</td><td>${escape(x.before)}</td>` +
          `<td>${escape(x.after)}</td></tr>`,
      ),
    )
    .join("\n");
  return (
    `<h2>Evaluation splits</h2>
<table><tr><th>split</th><th>harmful + harmless</th><th>tokens a word</th><th>harmful refusal</th><th>harmless refusal</th>` +
    `<th>harmless KL</th><th>harmless answers unchanged</th><th>harmful answers that mention the request's topic</th></tr>
${measures}</table>
<h3>Sample completions</h3>
<table><tr><th>split</th><th>instruction</th><th>before</th><th>after</th></tr>
${samples}</table>`
  );
}

export async function writeReportHtml(path: string, report: RunReport): Promise<void> {
  const figures = reportFigures(report);
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const rows = report.samples
    .map((s) => `<tr><td>${escape(s.instruction)}</td><td>${escape(s.before)}</td><td>${escape(s.after)}</td></tr>`)
    .join("\n");
  const html =
    `<!doctype html>
<html><head><meta charset="utf-8"><title>abliterate report: ${escape(report.model)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 ` +
    `1em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px ` +
    `8px;text-align:left;vertical-align:top}.plot{margin:1em 0}</style>
<script>${await plotlyScript()}</script></head><body>
<h1>Abliteration report</h1>
<p>Model <code>${escape(report.model)}</code> (${report.nLayers} layers, d_model ${report.dModel}); backend ${escape(report.backend)}; ` +
    `${report.seconds.toFixed(0)} s.</p>
<p>Chosen direction <b>${escape(report.chosen.key)}</b>. On the test split (answers of ${report.newTokens.evaluation} ` +
    `new tokens): harmful refusal ${pct(report.before.harmfulRefusalRate)} → ` +
    `${pct(report.after.harmfulRefusalRate)};
harmless refusal ${pct(report.before.harmlessRefusalRate)} → ${pct(report.after.harmlessRefusalRate)}; harmless KL ` +
    `${report.after.harmlessKl.toFixed(4)};
harmless answers unchanged ${pct(report.agreement.harmlessUnchanged.exact)}${
      report.agreement.coherentCompliance
        ? `; coherent ` +
          `compliance ${pct(report.agreement.coherentCompliance.firstTokens)} (harmful answers beginning as the compliant ` +
          `reference's, first ${report.agreement.coherentCompliance.k} tokens)`
        : ""
    }${report.planted ? `; cosine with the planted direction ` + `${report.planted.chosenCosine.toFixed(3)}` : ""}${
      report.planted?.explained
        ? ` (of the difference of means' squared norm: ${pct(report.planted.explained.planted)} along the ` +
          `planted direction, ${pct(report.planted.explained.other)} along the stage-1 model's own harmful/harmless difference, ` +
          `${pct(report.planted.explained.rest)} other)`
        : ""
    }.
Exported model: <code>${escape(report.exportDir)}</code>, checked against the ${escape(report.verify.reference)}: max |logit ` +
    `difference| ${report.verify.maxAbsLogitDiff.toExponential(2)} on ` +
    `${report.verify.prompts} prompts${report.verify.passed ? "" : " (FAILED)"}.${
      report.adapter
        ? ` The same edit as a rank-1 LoRA adapter: <code>${escape(report.adapter.outDir)}</code> ` +
          `(${report.adapter.modules.length} modules).`
        : ""
    }</p>
${Object.keys(figures)
  .map((id) => `<div class="plot" id="${id}"></div>`)
  .join("\n")}
<h2>Sample completions (harmful test prompts)</h2>
<table><tr><th>instruction</th><th>before</th><th>after</th></tr>
${rows}</table>
${splitTables(report)}
<script>const figures = ${scriptJson(figures)};
for (const [id, f] of Object.entries(figures)) Plotly.newPlot(id, f.data, f.layout, {responsive: true});</script>
</body></html>
`;
  await writeFileAtomic(path, html);
}

/** heal.html: the healing run's training curve and its before/after table, one self-contained page. */
export async function writeHealReportHtml(path: string, report: HealReport): Promise<void> {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const row = (name: string, f: (m: HealMetrics) => string) =>
    `<tr><td>${name}</td><td>${f(report.before)}</td><td>${f(report.after)}</td></tr>`;
  const html =
    `<!doctype html>
<html><head><meta charset="utf-8"><title>abliterate healing: ${escape(report.model)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 ` +
    `1em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}</style>
<script>${await plotlyScript()}</script></head><body>
<h1>Healing report</h1>
<p>Model <code>${escape(report.model)}</code>, healed against <code>${escape(report.original)}</code> with DPO on LoRA adapters ` +
    `(${escape(JSON.stringify(report.settings))}); ${report.pairs.n} preference pairs (${escape(report.pairs.source)}); ` +
    `${report.seconds.toFixed(0)} s.
Exported to <code>${escape(report.exportDir)}</code>; the reloaded export differs from the model with its adapters by at most ` +
    `${report.exportCheck.toExponential(2)} in the logits.</p>
<div id="training"></div>
<table><tr><th>test split</th><th>before healing</th><th>after healing</th></tr>
${row("harmful refusal", (m) => pct(m.harmfulRefusal))}
${row("harmless refusal", (m) => pct(m.harmlessRefusal))}
${row("harmless KL (original || model)", (m) => m.harmlessKl.toFixed(4))}
${row("harmless answers unchanged", (m) => pct(m.harmlessUnchanged.exact))}
${report.before.coherentCompliance ? row("coherent compliance", (m) => pct(m.coherentCompliance!.firstTokens)) : ""}
</table>
<script>const f = ${scriptJson(dpoTrainingFigure(report.history))}; Plotly.newPlot("training", f.data, f.layout, {responsive: ` +
    `true});</script>
</body></html>
`;
  await writeFileAtomic(path, html);
}

/** search.html: a search's trials and Pareto front (the figure) and the front as a table with each trial's apply command. */
export async function writeSearchHtml(path: string, study: Study, front: readonly number[], options: { studyFile: string }): Promise<void> {
  const figure = paretoFigure(study.trials, front, study.baseline, study.references);
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const rows = frontRows(study, front)
    .map(
      (r) =>
        `<tr><td>${r.trial}</td><td>${pct(r.refusal)}</td><td>${r.kl.toFixed(4)}</td><td>${escape(r.edit)}</td>` +
        `<td><code>abliterate apply --study ${escape(options.studyFile)} --trial ${r.trial} -o OUT</code></td></tr>`,
    )
    .join("\n");
  const h = study.header;
  const references = study.references
    .map((r) => ` ${escape(r.label)} (${escape(r.key)}): refusal ${pct(r.refusal)}, KL ${r.kl.toFixed(4)}.`)
    .join("");
  const html =
    `<!doctype html>
<html><head><meta charset="utf-8"><title>abliterate search: ${escape(h.model)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 ` +
    `1em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}</style>
<script>${await plotlyScript()}</script></head><body>
<h1>Search</h1>
<p>Model <code>${escape(h.model)}</code>, directions <code>${escape(h.directionsFile)}</code>; ${study.trials.length} trials ` +
    `(seed ${h.seed}, ${h.startupTrials} random, then TPE), each measured on ${h.data.harmful} harmful prompts (refusal by ` +
    `${escape(h.evaluation.detector)}, ${h.evaluation.maxNewTokens} new tokens) and ${h.data.harmless} harmless prompts ` +
    `(KL over ${h.evaluation.klTokens} answer ` +
    `token${h.evaluation.klTokens === 1 ? "" : "s"}).${
      study.baseline ? ` Without intervention: refusal ${pct(study.baseline.refusal)}.` : ""
    }${references}</p>
<div id="pareto"></div>
<h2>Pareto front</h2>
<table><tr><th>trial</th><th>refusal</th><th>KL</th><th>edit</th><th>export it</th></tr>
${rows}</table>
<script>Plotly.newPlot("pareto", ${scriptJson(figure.data)}, ${scriptJson(figure.layout)}, {responsive: true});</script>
</body></html>
`;
  await writeFileAtomic(path, html);
}
