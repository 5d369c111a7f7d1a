// Chat-template rendering with bounded time and memory. A Jinja template is a program: Python's jinja2 sandbox
// bounds its loops, @huggingface/jinja does not, and a template may loop only on some conversations (a given
// user text, assistant turns). Every render therefore runs in a worker thread with a memory limit, and the
// caller waits for it synchronously with a deadline, so a hostile template fails with its file named instead
// of freezing a notebook or a command.
import { createRequire } from "node:module";
import { MessageChannel, MessagePort, Worker, receiveMessageOnPort } from "node:worker_threads";
import { Template } from "@huggingface/jinja";

/** Longest chat-templated text accepted, in characters: a template that writes more is broken or hostile. */
export const MAX_RENDERED_CHARS = 1_000_000;
/** How long one render may take. A normal template renders a conversation in well under a millisecond. */
export const RENDER_TIMEOUT_MS = 10_000;
/** The memory the rendering thread may use. */
export const RENDER_MEMORY_MB = 256;

export class ChatTemplateError extends Error {
  constructor(
    message: string,
    /** The template raised the error itself (raise_exception, a type error), as opposed to crossing a bound. */
    readonly refused = false,
  ) {
    super(message);
    this.name = "ChatTemplateError";
  }
}

/** Why a render failed: the template's own error (raise_exception, a type error), or a bound it crossed. */
type Reply = { text: string } | { error: string } | { length: number };

const WORKER_CODE = `
const { workerData } = require("node:worker_threads");
const { Template } = require(workerData.jinja);
const signal = new Int32Array(workerData.signal);
const port = workerData.port;
const parsed = new Map();
port.on("message", ({ source, context, maxChars }) => {
  let reply;
  try {
    let template = parsed.get(source);
    if (template === undefined) parsed.set(source, (template = new Template(source)));
    const text = template.render(context);
    reply = text.length > maxChars ? { length: text.length } : { text };
  } catch (error) {
    reply = { error: String((error && error.message) || error) };
  }
  port.postMessage(reply);
  Atomics.store(signal, 0, 1);
  Atomics.notify(signal, 0);
});
`;

/** The one rendering thread of this process, started on first use and replaced after a render that overran. */
let renderer: { worker: Worker; port: MessagePort; signal: Int32Array } | undefined;

function startRenderer(): NonNullable<typeof renderer> {
  const { port1, port2 } = new MessageChannel();
  const shared = new SharedArrayBuffer(4);
  const worker = new Worker(WORKER_CODE, {
    eval: true,
    workerData: { jinja: createRequire(import.meta.url).resolve("@huggingface/jinja"), signal: shared, port: port2 },
    transferList: [port2],
    resourceLimits: { maxOldGenerationSizeMb: RENDER_MEMORY_MB },
    stdout: true,
    stderr: true,
  });
  worker.unref(); // an idle renderer never keeps the process alive
  worker.on("error", () => {}); // a thread that ran out of memory is reported by the render that waited on it
  return { worker, port: port1, signal: new Int32Array(shared) };
}

/**
 * Render `source` with `context` (structured-cloneable: messages, flags, token texts), waiting at most
 * `RENDER_TIMEOUT_MS`. `file` and `what` name the template and the conversation in errors.
 */
export function renderChatTemplate(source: string, context: Record<string, unknown>, file: string, what: string): string {
  // A render that gets no answer is tried once more on a fresh thread: on a machine busy with other work the
  // first thread may have been starved or stalled, while a template that loops or floods memory fails again.
  const reply = renderOnce(source, context) ?? renderOnce(source, context);
  if (reply === undefined)
    throw new ChatTemplateError(
      `${file}: rendering the chat template for ${what} failed: it did not finish within ${RENDER_TIMEOUT_MS / 1000} s ` +
        `with ${RENDER_MEMORY_MB} MB of memory (twice, on fresh threads); the template is broken or hostile`,
    );
  if ("error" in reply) throw new ChatTemplateError(`${file}: the chat template refused ${what}: ${reply.error}`, true);
  if ("length" in reply)
    throw new ChatTemplateError(`${file}: the chat template wrote ${reply.length} characters for ${what}, more than ${MAX_RENDERED_CHARS}`);
  return reply.text;
}

/** One render on the rendering thread, or undefined when it gave no answer by the deadline (the thread is then replaced). */
function renderOnce(source: string, context: Record<string, unknown>): Reply | undefined {
  renderer ??= startRenderer();
  const { worker, port, signal } = renderer;
  Atomics.store(signal, 0, 0);
  port.postMessage({ source, context, maxChars: MAX_RENDERED_CHARS });
  // A thread that runs out of memory dies without signalling: that too shows as no answer by the deadline.
  const answered = Atomics.wait(signal, 0, 0, RENDER_TIMEOUT_MS) !== "timed-out" || Atomics.load(signal, 0) === 1;
  const received = answered ? receiveMessageOnPort(port) : undefined;
  if (received === undefined) {
    renderer = undefined;
    void worker.terminate();
    return undefined;
  }
  return received.message as Reply;
}

/** Parse a template in this thread, so that a syntax error is reported at once with its file. */
export function parseChatTemplate(source: string, file: string): void {
  try {
    new Template(source);
  } catch (error) {
    throw new ChatTemplateError(`${file}: the chat template does not parse (${(error as Error).message})`);
  }
}

/** A short description of a conversation for error messages: its last message, cut to 60 characters. */
export function describeConversation(messages: readonly { role: string; content: string }[]): string {
  const last = messages.at(-1);
  if (last === undefined) return "an empty conversation";
  const text = last.content.length > 60 ? `${last.content.slice(0, 57)}...` : last.content;
  return `the conversation ending with the ${last.role} message ${JSON.stringify(text)}`;
}
