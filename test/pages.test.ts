// Large weight arrays ask Linux for transparent huge pages (src/pages.ts): the advice reaches the kernel.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { describe, it } from "node:test";
import { largeFloat32Array } from "../src/pages.ts";

/** The VmFlags of the mapping of this process that holds `address` (/proc/self/smaps). */
function vmFlags(address: bigint): string[] {
  let inside = false;
  for (const line of readFileSync("/proc/self/smaps", "utf8").split("\n")) {
    const range = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
    if (range) inside = BigInt(`0x${range[1]}`) <= address && address < BigInt(`0x${range[2]}`);
    else if (inside && line.startsWith("VmFlags:")) return line.slice("VmFlags:".length).trim().split(/\s+/);
  }
  throw new Error(`no mapping of this process holds 0x${address.toString(16)}`);
}

describe("large arrays on huge pages", () => {
  it("a large array is zeroed, of the length asked, and (on Linux) its pages are advised as huge", () => {
    const count = 4 << 20; // 16 MiB
    const values = largeFloat32Array(count);
    assert.equal(values.length, count);
    assert.ok(values.every((v) => v === 0));
    values.fill(1.5);
    assert.equal(values[count - 1], 1.5);
    if (process.platform !== "linux") return; // the advice is Linux's: elsewhere an ordinary array, checked above
    const koffi = createRequire(import.meta.url)("koffi") as typeof import("koffi");
    const middle = (koffi.address(values) as bigint) + BigInt(values.byteLength / 2);
    assert.ok(vmFlags(middle).includes("hg"), `VmFlags of the array's mapping: ${vmFlags(middle).join(" ")} (expected hg: MADV_HUGEPAGE)`);
  });
});
