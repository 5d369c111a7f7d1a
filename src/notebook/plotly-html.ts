// The HTML fallback of a figure: a div and a script that draws it with plotly.js, loaded from the
// page if present, else from `vendor/plotly.min.js` beside the notebook (copied there by
// `npm run kernel:install` and `npm run notebooks`; never committed, never fetched from a CDN).
import type { Figure } from "../report/plots.ts";

export const VENDOR_PLOTLY = "vendor/plotly.min.js";

export function plotlyCdnFreeHtml(figure: Figure, id: string): string {
  const spec = JSON.stringify({ data: figure.data, layout: figure.layout }).replace(/</g, "\\u003c");
  return `<div id="${id}" class="abliterate-plot" style="min-height:${Number(figure.layout.height ?? 380)}px"></div>
<script>(function () {
  var spec = ${spec};
  function draw() { window.Plotly.newPlot("${id}", spec.data, spec.layout, { responsive: true }); }
  if (window.Plotly) return draw();
  var pending = window.__abliteratePlotly = window.__abliteratePlotly || [];
  pending.push(draw);
  if (pending.length > 1) return;
  var s = document.createElement("script");
  s.src = "${VENDOR_PLOTLY}";
  s.onload = function () { pending.splice(0).forEach(function (f) { f(); }); };
  s.onerror = function () { document.getElementById("${id}").textContent = "plotly.js not found at ${VENDOR_PLOTLY}: run npm run kernel:install"; };
  document.head.appendChild(s);
})();</script>`;
}
