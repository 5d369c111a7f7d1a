// Progress of long CLI work, on stderr: a bar per stage on a terminal; elsewhere (a log file, a pipe, a
// notebook's subprocess) a plain line every few seconds, so a long run is never silent.
import cliProgress from "cli-progress";

export interface ProgressReporter {
  update: (stage: string, done: number, total: number, detail?: string) => void;
  stop: () => void;
}

export function progressReporter(
  options: { terminal?: boolean; intervalMs?: number; write?: (line: string) => void } = {},
): ProgressReporter {
  const terminal = options.terminal ?? process.stderr.isTTY === true;
  return terminal
    ? barReporter()
    : lineReporter(options.intervalMs ?? 5000, options.write ?? ((line) => process.stderr.write(line + "\n")));
}

function barReporter(): ProgressReporter {
  let bar: cliProgress.SingleBar | undefined;
  let current = "";
  const stop = () => {
    bar?.stop();
    bar = undefined;
  };
  return {
    update(stage, done, total, detail) {
      if (stage !== current) {
        stop();
        current = stage;
        bar = new cliProgress.SingleBar(
          {
            format: `${stage.padEnd(32)} [{bar}] {value}/{total} | {detail} | ETA {eta_formatted}`,
            stream: process.stderr,
            hideCursor: true,
            noTTYOutput: false,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(total, 0, { detail: "" });
      }
      bar!.update(done, { detail: detail ?? "" });
      if (done >= total) stop();
    },
    stop,
  };
}

/**
 * One line when a stage starts, then at most one every `intervalMs`, and one when it ends: stage, done/total,
 * rate, ETA. An update that repeats the last line's counts (work counted in rounded units) prints nothing.
 */
export function lineReporter(intervalMs: number, write: (line: string) => void): ProgressReporter {
  let stage = "";
  let started = 0;
  let last = 0;
  let shown = "";
  return {
    update(name, done, total, detail) {
      const now = performance.now();
      if (name !== stage) {
        stage = name;
        started = now;
        last = -Infinity;
        shown = "";
      }
      if ((now - last < intervalMs && done < total) || shown === `${done}/${total}`) return;
      last = now;
      shown = `${done}/${total}`;
      const seconds = (now - started) / 1000;
      const rate = seconds > 0 ? done / seconds : 0;
      const eta = rate > 0 && done < total ? `, ETA ${((total - done) / rate).toFixed(0)} s` : "";
      write(`${name}: ${done}/${total}${detail ? ` (${detail})` : ""}, ${seconds.toFixed(0)} s${eta}`);
    },
    stop: () => {},
  };
}
