// The HTML fallback of a figure: its static SVG picture, which shows wherever HTML does (GitHub, nbviewer,
// an untrusted notebook, an offline export), and a script that replaces it by the interactive plot where
// scripts run. plotly.js is taken from the page if it has one, else loaded from `vendor/plotly.min.js`
// in the notebook's folder (copied there by `npm run kernel:install` and `npm run notebooks`; never
// committed, never fetched from a CDN). Where that file is reached:
// - beside the page (an nbconvert HTML export saved in notebooks/);
// - inside Jupyter, through the server's /files/ route: the kernel knows its notebook's absolute path
//   (the JPY_SESSION_NAME a Jupyter server gives its kernels) and the page knows the server's root
//   folder and base URL (JupyterLab's page config), so the address does not depend on the page's;
// - failing that, from a notebook address in the page's own URL (classic notebook, Lab's /lab/tree/...).
// When every candidate fails, every plot waiting for plotly.js says why and keeps its picture, and the
// next plot tries again.
import { dirname, isAbsolute } from "node:path";
import type { Figure } from "../report/plots.ts";
import { svgImageTag } from "../report/markup.ts";

export const VENDOR_PLOTLY = "vendor/plotly.min.js";

/** The folder of the notebook this kernel serves, as the Jupyter server told it (absolute), if it did. */
function notebookFolder(): string | undefined {
  const session = process.env.JPY_SESSION_NAME;
  return session && isAbsolute(session) ? dirname(session).replace(/\\/g, "/") : undefined;
}

export function plotlyCdnFreeHtml(figure: Figure, id: string, svg: string): string {
  const spec = JSON.stringify({ data: figure.data, layout: figure.layout }).replace(/</g, "\\u003c");
  const title = (figure.layout.title as { text?: string } | undefined)?.text ?? "figure";
  const folder = JSON.stringify(notebookFolder() ?? null);
  return (
    `<div id="${id}" class="abliterate-plot" style="min-height:${Number(figure.layout.height ?? 380)}px">
${svgImageTag(svg, title)}
<div class="abliterate-plot-note" style="font-size:12px;color:#666">Static picture. The interactive plot replaces it when the ` +
    `cell runs in a trusted notebook; JupyterLab with the plotly Python package installed draws it natively.</div>
</div>
<script>(function () {
  var el = document.getElementById("${id}");
  var spec = ${spec};
  function draw() { el.innerHTML = ""; window.Plotly.newPlot(el, spec.data, spec.layout, { responsive: true }); }
  function failed(why) { var note = el.querySelector(".abliterate-plot-note"); if (note) note.textContent = "Static picture: the ` +
    `interactive plot needs plotly.js, which " + why; }
  if (window.Plotly) return draw();
  var pending = window.__abliteratePlotly = window.__abliteratePlotly || [];
  pending.push({ draw: draw, failed: failed });
  if (pending.length > 1) return;
  var candidates = ["${VENDOR_PLOTLY}"];
  try {
    var node = document.getElementById("jupyter-config-data");
    var config = node ? JSON.parse(node.textContent) : {};
    var base = (config.baseUrl || "/").replace(/\\/?$/, "/");
    var folder = ${folder}, root = (config.serverRoot || "").replace(/\\/?$/, "/");
    if (folder && root.length > 1 && (folder + "/").indexOf(root) === 0) candidates.push(base + "files/" + (folder + ` +
    `"/").slice(root.length) + "${VENDOR_PLOTLY}");
    var m = window.location.pathname.match(/\\/(?:lab\\/tree|doc\\/tree|tree|notebooks)\\/(.*\\/)?[^\\/]*$/);
    if (m && candidates.indexOf(base + "files/" + (m[1] || "") + "${VENDOR_PLOTLY}") < 0) candidates.push(base + "files/" + ` +
    `(m[1] || "") + "${VENDOR_PLOTLY}");
  } catch (e) {}
  function load(i) {
    if (i >= candidates.length) {
      var why = "could not be loaded from " + candidates.join(" or ") + ": it is read from vendor/plotly.min.js beside the ` +
    `page (npm run kernel:install writes it into notebooks/; beside an exported HTML file elsewhere, copy that vendor folder ` +
    `next to it and reload)";
      pending.splice(0).forEach(function (p) { p.failed(why); });
      return;
    }
    // The classic notebook has require.js, which would capture plotly.js as an AMD module.
    var define = window.define;
    window.define = undefined;
    var s = document.createElement("script");
    s.src = candidates[i];
    s.onload = function () { window.define = define; pending.splice(0).forEach(function (p) { p.draw(); }); };
    s.onerror = function () { window.define = define; s.remove(); load(i + 1); };
    document.head.appendChild(s);
  }
  load(0);
})();</script>`
  );
}
