// A run's report on disk: report.json for scripts, report.html for people.
import { join } from "node:path";
import { writeFileAtomic } from "../files.ts";
import { writeReportHtml } from "./html.ts";
import type { RunReport } from "./types.ts";

export async function writeReport(outDir: string, report: RunReport): Promise<{ json: string; html: string }> {
  const json = join(outDir, "report.json");
  const html = join(outDir, "report.html");
  await writeFileAtomic(json, JSON.stringify(report, null, 2) + "\n");
  await writeReportHtml(html, report);
  return { json, html };
}
