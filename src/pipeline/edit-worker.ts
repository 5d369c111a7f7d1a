// A worker thread of the export: orthogonalises one stored tensor (its raw bytes, transferred in) with the
// same streaming kernel the main thread uses, and sends the encoded result back.
import { parentPort } from "node:worker_threads";
import type { UnitVector } from "../projection.ts";
import type { FloatDtype } from "../safetensors/dtype.ts";
import { orthogonalizeStream, type WriterKind } from "./orthogonalize.ts";

export interface EditJob {
  id: number;
  kind: WriterKind;
  dtype: FloatDtype;
  shape: number[];
  unit: Float64Array;
  scale: number;
  bytes: Uint8Array;
}

parentPort!.on("message", async (job: EditJob) => {
  try {
    const out = new Uint8Array(job.bytes.length);
    let at = 0;
    for await (const piece of orthogonalizeStream(job.kind, job.dtype, job.shape, job.unit as UnitVector, job.scale, async (start, end) => job.bytes.subarray(start, end))) {
      out.set(piece, at);
      at += piece.length;
    }
    parentPort!.postMessage({ id: job.id, bytes: out }, [out.buffer]);
  } catch (error) {
    parentPort!.postMessage({ id: job.id, error: (error as Error).message });
  }
});
