// Small file-system helpers shared by the loaders and the export.
import { stat } from "node:fs/promises";

/** Whether a file or folder exists at `path`. */
export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
