// Entry point of the package's worker threads: the package is TypeScript run through tsx, which a worker
// does not inherit, so it registers tsx here and imports the worker module named in workerData.entry.
import { register } from "tsx/esm/api";
import { workerData } from "node:worker_threads";

register();
await import(workerData.entry);
