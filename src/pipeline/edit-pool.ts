// Worker threads for the export's edited tensors, so that their arithmetic runs on every core while the
// main thread copies the unedited ones. Tensors too large to hand over whole are edited in the main thread,
// streamed, as before.
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import type { UnitVector } from "../projection.ts";
import type { FloatDtype } from "../safetensors/dtype.ts";
import type { EditJob } from "./edit-worker.ts";
import type { WriterKind } from "./orthogonalize.ts";

/** Tensors up to this many stored bytes are edited by a worker (it holds about twice that while working). */
export const WORKER_TENSOR_BYTES = 256 * 1024 * 1024;

export class EditPool {
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly waiting: (() => void)[] = [];
  private readonly pending = new Map<number, { resolve: (b: Uint8Array) => void; reject: (e: Error) => void }>();
  private nextId = 0;

  constructor(size = Number(process.env.ABLITERATE_EXPORT_THREADS) || availableParallelism()) {
    for (let i = 0; i < size; i++) {
      const worker = new Worker(new URL("../worker-bootstrap.mjs", import.meta.url), { workerData: { entry: new URL("./edit-worker.ts", import.meta.url).href } });
      worker.on("message", (m: { id: number; bytes?: Uint8Array; error?: string }) => {
        const job = this.pending.get(m.id)!;
        this.pending.delete(m.id);
        this.release(worker);
        if (m.error !== undefined) job.reject(new Error(m.error));
        else job.resolve(m.bytes!);
      });
      worker.on("error", (error) => {
        for (const job of this.pending.values()) job.reject(error);
        this.pending.clear();
      });
      this.workers.push(worker);
      this.idle.push(worker);
    }
  }

  private release(worker: Worker): void {
    this.idle.push(worker);
    this.waiting.shift()?.();
  }

  /** Edit one tensor's raw bytes (which are handed over, no longer usable here). */
  async run(kind: WriterKind, dtype: FloatDtype, shape: readonly number[], unit: UnitVector, scale: number, bytes: Uint8Array): Promise<Uint8Array> {
    while (this.idle.length === 0) await new Promise<void>((r) => this.waiting.push(r));
    const worker = this.idle.pop()!;
    const id = this.nextId++;
    const job: EditJob = { id, kind, dtype, shape: [...shape], unit: Float64Array.from(unit), scale, bytes };
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage(job, [bytes.buffer as ArrayBuffer]);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
