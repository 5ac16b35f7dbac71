import { readFile, readdir } from 'node:fs/promises';

/** Children of `ppid` whose command name is `comm` (Linux /proc). */
export async function childrenNamed(ppid: number, comm: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // pid (comm) state ppid ...; comm may contain spaces, so split at the last ')'.
    const close = stat.lastIndexOf(')');
    const name = stat.slice(stat.indexOf('(') + 1, close);
    const ppidField = Number(stat.slice(close + 2).split(' ')[1]);
    if (name === comm && ppidField === ppid) found.push(Number(entry));
  }
  return found;
}

export async function waitUntil(
  what: string,
  timeoutMs: number,
  probe: () => Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
