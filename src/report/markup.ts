// The small pieces of markup the figures, pictures and pages share.

/** Text made safe inside HTML or SVG, in element content and in quoted attributes. */
export function escapeMarkup(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

/** An SVG picture as an HTML image (a data URI), shown where HTML is and no SVG output is (untrusted notebooks, GitHub). */
export function svgImageTag(svg: string, alt: string): string {
  return `<img alt="${escapeMarkup(alt)}" style="max-width:100%" src="data:image/svg+xml;base64,${Buffer.from(svg).toString("base64")}">`;
}
