/** An AbortSignal that fires on Ctrl-C / SIGTERM, so running dumps are stopped and cleaned up. */
export function interruptSignal(): AbortSignal {
  const controller = new AbortController();
  const onSignal = (sig: NodeJS.Signals): void => {
    process.stderr.write(`\nReceived ${sig}: stopping and cleaning up…\n`);
    controller.abort();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return controller.signal;
}
