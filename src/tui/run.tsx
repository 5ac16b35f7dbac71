import { render } from 'ink';
import { ExitCode } from '../exit-codes.js';
import { App } from './app.js';
import type { TuiStart } from './config.js';
import { LiveServices } from './live.js';
import type { TuiServices } from './services.js';

export interface TuiIo {
  stdin?: NodeJS.ReadStream;
  stdout?: NodeJS.WriteStream;
}

/**
 * Shows the UI until the user quits (or SIGTERM/SIGHUP asks it to: a running operation is stopped
 * and cleaned up first, as on a confirmed quit). Ink restores the terminal (raw mode off, cursor
 * back) on unmount and on process exit. Resolves with Interrupted when an operation had to be
 * stopped, else Ok.
 */
export async function runTui(start: TuiStart, io: TuiIo = {}): Promise<number> {
  return showApp(new LiveServices(start), !start.config.noColor, io);
}

export async function showApp(services: TuiServices, color: boolean, io: TuiIo = {}): Promise<number> {
  const outside = new AbortController();
  let stopped = false;
  const instance = render(
    <App
      services={services}
      color={color}
      outside={outside.signal}
      onExit={(s) => {
        stopped = s;
        instance.unmount();
      }}
    />,
    {
      exitOnCtrlC: false,
      patchConsole: true,
      // Ink's defaults are process.stdin/stdout: an explicit undefined would replace them.
      ...(io.stdin ? { stdin: io.stdin } : {}),
      ...(io.stdout ? { stdout: io.stdout } : {}),
    },
  );
  const onSignal = (): void => outside.abort();
  for (const sig of ['SIGTERM', 'SIGHUP', 'SIGINT'] as const) process.on(sig, onSignal);
  try {
    await instance.waitUntilExit();
  } finally {
    for (const sig of ['SIGTERM', 'SIGHUP', 'SIGINT'] as const) process.off(sig, onSignal);
  }
  return stopped ? ExitCode.Interrupted : ExitCode.Ok;
}
