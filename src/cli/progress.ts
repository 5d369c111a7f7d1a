// Progress bars for long CLI work (stderr), one bar per stage, with rate and ETA.
import cliProgress from "cli-progress";

export function progressReporter(enabled: boolean): { update: (stage: string, done: number, total: number, detail?: string) => void; stop: () => void } {
  if (!enabled) return { update: () => {}, stop: () => {} };
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
        bar = new cliProgress.SingleBar({ format: `${stage.padEnd(32)} [{bar}] {value}/{total} | {detail} | ETA {eta_formatted}`, stream: process.stderr, hideCursor: true, noTTYOutput: false }, cliProgress.Presets.shades_classic);
        bar.start(total, 0, { detail: "" });
      }
      bar!.update(done, { detail: detail ?? "" });
      if (done >= total) stop();
    },
    stop,
  };
}
