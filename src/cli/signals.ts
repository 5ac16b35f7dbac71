import { interruptTransfers } from '../storage/transport.js';
import { ExitCode } from '../exit-codes.js';

/**
 * After the first SIGINT/SIGTERM the command has this long to clean up; then the process ends
 * anyway. A second signal is not needed: an unreachable store cannot hold the command hostage.
 */
export const CLEANUP_GRACE_MS = 15_000;

let received: NodeJS.Signals | undefined;

/** The signal that interrupted this command, if one did. */
export function interruptedBy(): NodeJS.Signals | undefined {
  return received;
}

function onFirstSignal(sig: NodeJS.Signals): void {
  if (received) return;
  received = sig;
  // Storage requests in flight fail now instead of waiting out their timeouts and retries.
  interruptTransfers();
  const backstop = setTimeout(() => {
    process.stderr.write(
      `dbbackup: error: clean-up did not finish within ${CLEANUP_GRACE_MS / 1000} s of ${sig}; exiting now\n` +
        'hint: an interrupted backup never has a .meta.json, so nothing left behind counts as a backup; "dbbackup cleanup --prune-incomplete" removes leftovers.\n',
    );
    process.exit(ExitCode.Interrupted);
  }, CLEANUP_GRACE_MS);
  backstop.unref();
}

/** An AbortSignal that fires on Ctrl-C / SIGTERM, so running dumps are stopped and cleaned up. */
export function interruptSignal(): AbortSignal {
  const controller = new AbortController();
  const onSignal = (sig: NodeJS.Signals): void => {
    process.stderr.write(`\nReceived ${sig}: stopping and cleaning up…\n`);
    onFirstSignal(sig);
    controller.abort();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return controller.signal;
}

/**
 * For commands that only move objects (cloud upload, copy, list…): a signal cuts every storage
 * connection, the command's own error path aborts what it started (multipart uploads, sessions),
 * and the process exits 130 within seconds.
 */
export function stopTransfersOnSignal(): void {
  const onSignal = (sig: NodeJS.Signals): void => {
    process.stderr.write(`\nReceived ${sig}: stopping…\n`);
    onFirstSignal(sig);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
}
