// Every chat-template render is bounded, not only the probe at load (#23 item 8): a template that loops only on
// some conversations (a given user text, assistant turns) passes the one-line probe and used to hang
// `generate` and `heal` for ever.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { ChatTemplateError, ChatTokenizer, DEMO_MODEL_DIR, tokenizePreferences } from "../src/index.ts";
import { PACKAGE_ROOT } from "../src/paths.ts";

const run = promisify(execFile);
let work: string;
before(async () => {
  work = await mkdtemp(join(tmpdir(), "abliterate-template-"));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

/** The demo model with its chat template wrapped: `prefix` runs before the demo's own template. */
async function demoWithTemplate(name: string, prefix: string): Promise<string> {
  const dir = join(work, name);
  await cp(DEMO_MODEL_DIR, dir, { recursive: true });
  const config = JSON.parse(await readFile(join(dir, "tokenizer_config.json"), "utf8")) as { chat_template: string };
  await writeFile(join(dir, "tokenizer_config.json"), JSON.stringify({ ...config, chat_template: prefix + config.chat_template }));
  return dir;
}

const FOREVER = "{% for i in range(1000000000) %}{% endfor %}";

describe("every chat-template render is bounded (#23 item 8)", () => {
  it("a template that loops only on one user text fails `generate` on that prompt, naming the file and the prompt", async () => {
    const dir = await demoWithTemplate("loops-on-text", `{% if 'forever' in messages[-1].content %}${FOREVER}{% endif %}`);
    const tokenizer = await ChatTokenizer.load(dir); // the one-line probe passes
    assert.match(tokenizer.formatInstruction("Name a color."), /Name a color\./);
    const started = Date.now();
    let failure: { code?: number; stderr?: string } | undefined;
    try {
      await run(process.execPath, [join(PACKAGE_ROOT, "bin", "abliterate.js"), "generate", "-m", dir, "Loop forever please."], {
        cwd: PACKAGE_ROOT,
        timeout: 120_000,
      });
    } catch (error) {
      failure = error as typeof failure;
    }
    assert.ok(failure, "generate succeeded on a prompt its template cannot render");
    assert.equal(failure.code, 1);
    assert.match(
      String(failure.stderr),
      new RegExp(
        String.raw`loops-on-text\/tokenizer_config.json: rendering the chat template for the conversation ending with the user message ` +
          String.raw`"Loop forever please." failed: it did not finish within 10 s with 256 MB of memory`,
      ),
    );
    assert.ok(Date.now() - started < 60_000);
  });

  it("a template that loops only on assistant turns fails heal's tokenisation, and the next render works", async () => {
    const dir = await demoWithTemplate("loops-on-answers", `{% if messages[-1].role == 'assistant' %}${FOREVER}{% endif %}`);
    const tokenizer = await ChatTokenizer.load(dir);
    const pair = { messages: [{ role: "user" as const, content: "Name a color." }], chosen: "Blue.", rejected: "No." };
    assert.throws(
      () => tokenizePreferences(tokenizer, [pair]),
      (error: Error) =>
        error instanceof ChatTemplateError &&
        !error.refused &&
        error.message.includes(
          "loops-on-answers/tokenizer_config.json: rendering the chat template for the conversation ending with the assistant " +
            'message "Blue." failed',
        ),
    );
    // The thread that overran was replaced: rendering goes on.
    assert.match(tokenizer.formatInstruction("Name a color."), /Name a color\./);
  });

  it("a template's own error on some input names the file and the conversation, and is not a hazard at load", async () => {
    const dir = await demoWithTemplate("raises", `{% if 'secret' in messages[-1].content %}{{ raise_exception('no secrets') }}{% endif %}`);
    const tokenizer = await ChatTokenizer.load(dir);
    assert.throws(
      () => tokenizer.formatInstruction("Tell me a secret."),
      (error: Error) =>
        error instanceof ChatTemplateError &&
        error.refused &&
        error.message.includes(
          'raises/tokenizer_config.json: the chat template refused the conversation ending with the user message "Tell me a ' +
            'secret.": no secrets',
        ),
    );
  });
});
