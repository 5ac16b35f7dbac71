import { read } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

const readAt = promisify(read);

/** How long to wait, once every byte written so far is read, before looking for more. */
const POLL_MS = 10;
const CHUNK_BYTES = 1024 * 1024;

/**
 * Reads a file that another process is still writing, from the start to its end: every byte once,
 * in order, handed to `onChunk` (the buffer is reused: use it before returning). The file's end is
 * known only after `writerDone` settled (the writer exited: everything it wrote is visible), so a
 * read that finds nothing new before that waits briefly and tries again; nothing tells this process
 * when a program appended to a file short of inotify's one event per write, and a few milliseconds'
 * lag in the middle of a stream cost nothing. Resolves with the file's size; rejects when `signal`
 * fires or a read fails.
 */
export async function readGrowingFile(
  fd: number,
  o: { writerDone: Promise<unknown>; signal: AbortSignal; onChunk: (chunk: Buffer) => void },
): Promise<number> {
  let ended = false;
  const settled = o.writerDone.then(
    () => (ended = true),
    () => (ended = true),
  );
  const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
  let position = 0;
  for (;;) {
    o.signal.throwIfAborted();
    // Judged before the read: a writer that had exited by then has nothing more to add after it.
    const endedBefore = ended;
    const { bytesRead } = await readAt(fd, buffer, 0, buffer.length, position);
    if (bytesRead > 0) {
      o.onChunk(buffer.subarray(0, bytesRead));
      position += bytesRead;
      continue;
    }
    if (endedBefore) return position;
    await Promise.race([sleep(POLL_MS, undefined, { signal: o.signal }), settled]);
  }
}
