// Byte ranges copied from one open file into another: by copy_file_range where the system has it, else
// through buffers; both give the same bytes, and a source shorter than the range is named.
import assert from "node:assert/strict";
import { mkdtemp, open, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { copyRange, kernelCopy } from "../src/copy-range.ts";

let work: string;
before(async () => {
  work = await mkdtemp(join(tmpdir(), "abliterate-copy-range-"));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

describe("copyRange", () => {
  it("uses copy_file_range on Linux (koffi is a dependency)", { skip: process.platform !== "linux" && "not Linux" }, () => {
    assert.equal(kernelCopy(), process.env.ABLITERATE_COPY_RANGE === "off" ? "off (ABLITERATE_COPY_RANGE=off)" : "copy_file_range");
  });

  // Larger than one 16 MiB piece, so that both ways copy in several pieces.
  const source = Uint8Array.from({ length: 40 * 1024 * 1024 + 12345 }, (_, i) => (i * 2654435761) >>> 24);

  for (const buffered of [false, true]) {
    it(
      `${buffered ? "through buffers" : "in the kernel where it can"}: the range's bytes land at the position, nothing else ` + `written`,
      async () => {
        const from = join(work, `source-${buffered}.bin`);
        const to = join(work, `out-${buffered}.bin`);
        await writeFile(from, source);
        await writeFile(to, new Uint8Array(100).fill(7));
        const input = await open(from, "r");
        const output = await open(to, "r+");
        try {
          const start = 1001;
          const length = source.length - 5000;
          const range = { handle: input, start, length, path: from };
          assert.equal(await copyRange(range, output, 50, { buffered }), length);
        } finally {
          await input.close();
          await output.close();
        }
        const written = await readFile(to);
        assert.equal(written.length, 50 + source.length - 5000);
        assert.deepEqual(written.subarray(0, 50), Buffer.alloc(50, 7));
        assert.ok(
          Buffer.from(written.subarray(50)).equals(Buffer.from(source.subarray(1001, source.length - 3999))),
          "copied bytes differ",
        );
      },
    );
  }

  it("a source shorter than the range fails naming the file", async () => {
    const from = join(work, "short.bin");
    await writeFile(from, source.subarray(0, 1000));
    const input = await open(from, "r");
    const output = await open(join(work, "short-out.bin"), "w");
    try {
      for (const buffered of [false, true]) {
        await assert.rejects(
          copyRange({ handle: input, start: 10, length: 2000, path: from }, output, 0, { buffered }),
          new RegExp(`${from}: read \\d+ of \\d+ bytes at \\d+; the file changed or is truncated`),
        );
      }
    } finally {
      await input.close();
      await output.close();
    }
  });
});
