// Functions of the machine's BLAS library, through koffi, for the benchmarks: the library the BLAS path loaded,
// else the first of the usual names that has the function.
import { createRequire } from "node:module";
import { BLAS_CANDIDATES, blasInfo } from "../src/blas/library.ts";

/** The function with this C signature; throws naming the libraries tried when none has it. */
export function blasFunction<T>(signature: string, purpose: string): T {
  const koffi = createRequire(import.meta.url)("koffi") as typeof import("koffi");
  const tried: string[] = [];
  for (const library of [blasInfo()?.library, ...BLAS_CANDIDATES].filter((l): l is string => l !== undefined)) {
    try {
      return koffi.load(library).func(signature) as T;
    } catch (error) {
      tried.push(`${library}: ${(error as Error).message.split("\n")[0]}`);
    }
  }
  throw new Error(`${purpose} needs a BLAS library (${signature}): ${tried.join("; ")}`);
}
