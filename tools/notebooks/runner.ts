// Executes notebooks on the project's Jupyter kernel without Python: starts the tslab kernel,
// speaks the Jupyter messaging protocol over ZeroMQ (shell + iopub), and records each cell's outputs
// as nbformat 4 does. A failing cell stops the run with its error text.
import { SOLUTIONS_SWITCH } from "../../src/notebook/exercises.ts";
import { spawn, type ChildProcess } from "node:child_process";
import { createHmac, randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { kernelSpec } from "../../kernel/kernel-spec.ts";
import { ensureCellIds } from "./format.ts";

export interface NotebookCell {
  cell_type: "code" | "markdown" | "raw";
  id?: string;
  metadata: Record<string, unknown>;
  source: string | string[];
  outputs?: Record<string, unknown>[];
  execution_count?: number | null;
}

export interface Notebook {
  cells: NotebookCell[];
  metadata: Record<string, unknown>;
  nbformat: number;
  nbformat_minor: number;
}

export class CellError extends Error {
  constructor(
    readonly notebook: string,
    readonly cellIndex: number,
    readonly source: string,
    readonly ename: string,
    readonly evalue: string,
    readonly traceback: string[],
  ) {
    super(
      `${notebook}, cell ${cellIndex + 1}: ${ename}: ${evalue}\n--- cell source ---\n${source}\n--- traceback ` +
        `---\n${traceback.join("\n")}`,
    );
    this.name = "CellError";
  }
}

const sourceText = (s: string | string[]) => (Array.isArray(s) ? s.join("") : s);
const stripAnsi = (s: string) => s.replace(/\u001b\[[0-9;]*m/g, "");

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

/** Until something accepts connections on the port (the kernel has bound it); throws past the deadline or if the kernel exits. */
async function listening(port: number, deadline: number, child: ChildProcess): Promise<void> {
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: "127.0.0.1", port });
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (open) return;
    if (child.exitCode !== null) throw new Error(`the kernel exited with ${child.exitCode} before listening on port ${port}`);
    if (Date.now() > deadline) throw new Error(`the kernel did not listen on port ${port} in 120 s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

interface Message {
  header: { msg_id: string; msg_type: string };
  parent_header: { msg_id?: string };
  content: Record<string, unknown>;
}

/** A running kernel and its shell and iopub sockets. */
export class KernelClient {
  private readonly session = randomUUID();
  /** The kernel's own description of its language (Jupyter stores it in the notebook's metadata). */
  languageInfo: Record<string, unknown> | undefined;
  private constructor(
    private readonly process: ChildProcess,
    private readonly key: string,
    private readonly shell: import("zeromq").Dealer,
    private readonly iopub: import("zeromq").Subscriber,
    private readonly connectionDir: string,
    private readonly stderr: string[],
  ) {}

  /** Start a kernel from a kernel spec's argv (with `{connection_file}`), working in `cwd`. */
  /**
   * Start the kernel and wait until it answers. A kernel that fails to come up (tslab's ZeroMQ sockets can refuse
   * a message that arrives while another socket is still binding, and it then answers nothing) is stopped and
   * started once more.
   */
  static async start(argv: string[], cwd: string, env: Record<string, string> = {}): Promise<KernelClient> {
    try {
      return await KernelClient.launch(argv, cwd, env);
    } catch (error) {
      console.error(`the kernel did not start (${(error as Error).message.split("\n")[0]}); starting it again`);
      return KernelClient.launch(argv, cwd, env);
    }
  }

  private static async launch(argv: string[], cwd: string, env: Record<string, string>): Promise<KernelClient> {
    const zmq = await import("zeromq");
    const key = randomBytes(16).toString("hex");
    const ports = {
      shell_port: await freePort(),
      iopub_port: await freePort(),
      stdin_port: await freePort(),
      control_port: await freePort(),
      hb_port: await freePort(),
    };
    const connectionDir = await mkdtemp(join(tmpdir(), "abliterate-kernel-"));
    const connectionFile = join(connectionDir, "kernel.json");
    await writeFile(
      connectionFile,
      JSON.stringify({ ...ports, ip: "127.0.0.1", key, transport: "tcp", signature_scheme: "hmac-sha256", kernel_name: "abliterate" }),
    );
    const child = spawn(
      argv[0],
      argv.slice(1).map((a) => a.replace("{connection_file}", connectionFile)),
      { cwd, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] },
    );
    const stderr: string[] = [];
    child.stderr?.on("data", (d) => stderr.push(String(d)));
    child.stdout?.on("data", (d) => stderr.push(String(d)));
    // Nothing is sent before the kernel listens on every port: a message that reaches it while it is still
    // binding its sockets can leave it answering nothing.
    const deadline = Date.now() + 120_000;
    try {
      for (const port of Object.values(ports)) await listening(port, deadline, child);
    } catch (error) {
      child.kill("SIGKILL");
      await rm(connectionDir, { recursive: true, force: true });
      throw new Error(`${(error as Error).message}\nkernel output:\n${stderr.join("").slice(-4000)}`);
    }
    const shell = new zmq.Dealer({ routingId: randomUUID() });
    shell.connect(`tcp://127.0.0.1:${ports.shell_port}`);
    const iopub = new zmq.Subscriber();
    iopub.connect(`tcp://127.0.0.1:${ports.iopub_port}`);
    iopub.subscribe();
    const client = new KernelClient(child, key, shell, iopub, connectionDir, stderr);
    try {
      await client.waitReady();
    } catch (error) {
      await client.shutdown();
      throw error;
    }
    return client;
  }

  private sign(parts: string[]): string {
    const hmac = createHmac("sha256", this.key);
    for (const p of parts) hmac.update(p);
    return hmac.digest("hex");
  }

  private async send(msgType: string, content: Record<string, unknown>): Promise<string> {
    const msgId = randomUUID();
    const header = JSON.stringify({
      msg_id: msgId,
      session: this.session,
      username: "abliterate",
      date: new Date().toISOString(),
      msg_type: msgType,
      version: "5.3",
    });
    const parts = [header, "{}", "{}", JSON.stringify(content)];
    await this.shell.send(["<IDS|MSG>", this.sign(parts), ...parts]);
    return msgId;
  }

  private parse(frames: Buffer[]): Message {
    const delimiter = frames.findIndex((f) => f.toString() === "<IDS|MSG>");
    const [signature, header, parent, metadata, content] = frames.slice(delimiter + 1).map((f) => f.toString());
    if (signature !== this.sign([header, parent, metadata, content])) throw new Error("kernel message with a bad signature");
    return { header: JSON.parse(header), parent_header: JSON.parse(parent), content: JSON.parse(content) };
  }

  private async receive(socket: import("zeromq").Dealer | import("zeromq").Subscriber, timeoutMs: number): Promise<Message> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new Error(
              `no message from the kernel in ` +
                `${timeoutMs / 1000} s${this.process.exitCode !== null ? ` (kernel exited with ${this.process.exitCode})` : ""}\nkernel ` +
                `output:\n${this.stderr.join("").slice(-4000)}`,
            ),
          ),
        timeoutMs,
      );
    });
    try {
      return this.parse((await Promise.race([socket.receive(), timeout])) as Buffer[]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Wait until the kernel answers on shell and its iopub messages reach us: a SUB socket misses what
   * is published before its subscription is in place, so ask until a status message arrives.
   */
  private async waitReady(): Promise<void> {
    const id = await this.send("kernel_info_request", {});
    for (;;) {
      const reply = await this.receive(this.shell, 120_000);
      if (reply.parent_header.msg_id !== id) continue;
      this.languageInfo = reply.content.language_info as Record<string, unknown> | undefined;
      break;
    }
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const probe = await this.send("kernel_info_request", {});
      for (;;) if ((await this.receive(this.shell, 60_000)).parent_header.msg_id === probe) break;
      try {
        for (;;) if ((await this.receive(this.iopub, 1000)).parent_header.msg_id === probe) return;
      } catch {
        // nothing on iopub yet: ask again
      }
    }
    throw new Error("the kernel's iopub channel never delivered a message");
  }

  /** Execute code; returns nbformat outputs, or throws the cell's error. */
  async execute(
    code: string,
    timeoutMs: number,
  ): Promise<{ outputs: Record<string, unknown>[]; error?: { ename: string; evalue: string; traceback: string[] } }> {
    const id = await this.send("execute_request", {
      code,
      silent: false,
      store_history: true,
      user_expressions: {},
      allow_stdin: false,
      stop_on_error: true,
    });
    const outputs: Record<string, unknown>[] = [];
    const byDisplayId = new Map<string, Record<string, unknown>[]>();
    let error: { ename: string; evalue: string; traceback: string[] } | undefined;
    for (;;) {
      const msg = await this.receive(this.iopub, timeoutMs);
      if (msg.parent_header.msg_id !== id) continue;
      const c = msg.content;
      const type = msg.header.msg_type;
      if (type === "status" && c.execution_state === "idle") break;
      if (type === "stream") {
        const last = outputs[outputs.length - 1];
        if (last?.output_type === "stream" && last.name === c.name) last.text = String(last.text) + String(c.text);
        else outputs.push({ output_type: "stream", name: c.name, text: c.text });
      } else if (type === "display_data" || type === "execute_result") {
        const out: Record<string, unknown> = { output_type: type, data: c.data, metadata: c.metadata ?? {} };
        if (type === "execute_result") out.execution_count = c.execution_count;
        outputs.push(out);
        const displayId = (c.transient as { display_id?: string } | undefined)?.display_id;
        if (displayId) byDisplayId.set(displayId, [...(byDisplayId.get(displayId) ?? []), out]);
      } else if (type === "update_display_data") {
        const displayId = (c.transient as { display_id?: string } | undefined)?.display_id;
        for (const out of byDisplayId.get(displayId ?? "") ?? []) out.data = c.data;
      } else if (type === "error") {
        error = { ename: String(c.ename), evalue: String(c.evalue), traceback: (c.traceback as string[]).map(stripAnsi) };
        outputs.push({ output_type: "error", ename: c.ename, evalue: c.evalue, traceback: c.traceback });
      } else if (type === "clear_output") outputs.length = 0;
    }
    // tslab reports compile errors and uncaught exceptions on stderr with an execute_reply of status
    // "error" rather than an iopub error message, so the reply decides.
    for (;;) {
      const reply = await this.receive(this.shell, timeoutMs);
      if (reply.parent_header.msg_id !== id) continue;
      if (reply.content.status === "error" && !error) {
        const stderr = outputs
          .filter((o) => o.output_type === "stream" && o.name === "stderr")
          .map((o) => String(o.text))
          .join("");
        const lines = stripAnsi(stderr).split("\n");
        const message = lines.find((l) => /^\w*(Error|Exception)\b/.test(l)) ?? lines.find((l) => l.trim() !== "") ?? "";
        error = {
          ename: String(reply.content.ename ?? "Error"),
          evalue: String(reply.content.evalue ?? "").trim() || message,
          traceback: lines,
        };
      }
      break;
    }
    return { outputs, error };
  }

  /** Stop the kernel: SIGTERM, then SIGKILL after 5 s (a kernel stuck in its sockets ignores SIGTERM and would keep this process alive). */
  async shutdown(): Promise<void> {
    if (this.process.exitCode === null && this.process.signalCode === null) {
      const exited = new Promise((resolve) => this.process.once("exit", resolve));
      this.process.kill("SIGTERM");
      const kill = setTimeout(() => this.process.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(kill);
    }
    this.shell.close();
    this.iopub.close();
    await rm(this.connectionDir, { recursive: true, force: true });
  }
}

export interface RunNotebookOptions {
  /** Kernel argv with `{connection_file}` (default: the project's kernel spec). */
  argv?: string[];
  timeoutMs?: number;
  onCell?: (index: number, total: number) => void;
  /** Extra environment of the kernel (ABLITERATE_SOLUTIONS is 1 unless given). */
  env?: Record<string, string>;
}

/** Execute every code cell of a notebook in its own folder; returns the notebook with outputs. */
export async function runNotebook(path: string, options: RunNotebookOptions = {}): Promise<Notebook> {
  const notebook = JSON.parse(await readFile(path, "utf8")) as Notebook;
  const argv = options.argv ?? kernelSpec().argv;
  // Exercises run with their solutions, so that every notebook executes end to end (see src/notebook/exercises.ts).
  const kernel = await KernelClient.start(argv, dirname(path), { [SOLUTIONS_SWITCH]: "1", ...options.env });
  try {
    // What Jupyter itself would write on opening and saving: the kernel's language_info, an id on every cell.
    if (kernel.languageInfo) notebook.metadata.language_info = kernel.languageInfo;
    ensureCellIds(notebook);
    let count = 0;
    for (const [i, cell] of notebook.cells.entries()) {
      if (cell.cell_type !== "code") continue;
      const code = sourceText(cell.source);
      const { outputs, error } = await kernel.execute(code, options.timeoutMs ?? 600_000);
      cell.outputs = outputs;
      cell.execution_count = ++count;
      options.onCell?.(i + 1, notebook.cells.length);
      if (error) throw new CellError(path, i, code, error.ename, error.evalue, error.traceback);
    }
  } finally {
    await kernel.shutdown();
  }
  return notebook;
}
