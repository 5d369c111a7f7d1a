// The HTML fallback of a figure: a div and a script that draws it with plotly.js, taken from the page
// if it has one, else loaded from `vendor/plotly.min.js` beside the notebook (copied there by
// `npm run kernel:install` and `npm run notebooks`; never committed, never fetched from a CDN). That file
// is reached relative to the page (an nbconvert HTML export saved in notebooks/) or, inside Jupyter,
// through the server's /files/ route to the notebook's folder.
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
  var candidates = ["${VENDOR_PLOTLY}"];
  try {
    var config = document.getElementById("jupyter-config-data");
    var base = config ? JSON.parse(config.textContent).baseUrl || "/" : "/";
    var m = window.location.pathname.match(/\\/(?:lab\\/tree|doc\\/tree|tree|notebooks)\\/(.*\\/)?[^\\/]*$/);
    if (m) candidates.push(base.replace(/\\/?$/, "/") + "files/" + (m[1] || "") + "${VENDOR_PLOTLY}");
  } catch (e) {}
  function load(i) {
    if (i >= candidates.length) { document.getElementById("${id}").textContent = "plotly.js not found (tried " + candidates.join(", ") + "): run npm run kernel:install"; return; }
    // The classic notebook has require.js, which would capture plotly.js as an AMD module.
    var define = window.define;
    window.define = undefined;
    var s = document.createElement("script");
    s.src = candidates[i];
    s.onload = function () { window.define = define; pending.splice(0).forEach(function (f) { f(); }); };
    s.onerror = function () { window.define = define; load(i + 1); };
    document.head.appendChild(s);
  }
  load(0);
})();</script>`;
}
