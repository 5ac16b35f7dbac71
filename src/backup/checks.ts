import { spawn } from 'node:child_process';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import type { DatabaseEngine } from '../engines/engine.js';
import { findPgTool } from '../engines/tools.js';
import { IntegrityError } from '../errors.js';
import { detectCompression } from '../pipeline/compression.js';
import { createZstdFramesDecompress } from '../pipeline/zstd-frames.js';
import type { Storage } from '../storage/storage.js';

/** A custom-format archive must have a table of contents that pg_restore can read. */
export async function checkPgCustomToc(
  storage: Storage,
  key: string,
  _engine: DatabaseEngine,
): Promise<void> {
  const pgRestore = await findPgTool('pg_restore');
  if (!pgRestore) return; // The dump itself came from pg_dump; restore tools are checked at restore time.
  const head = await storage.get(key, { start: 0, end: 3 });
  const first: Buffer[] = [];
  for await (const c of head) first.push(c as Buffer);
  const compression = detectCompression(Buffer.concat(first));
  const source = await storage.get(key);
  const child = spawn(pgRestore, ['--list'], { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const stages =
    compression === 'none'
      ? []
      : [compression === 'gzip' ? zlib.createGunzip() : createZstdFramesDecompress()];
  // pg_restore stops reading after the table of contents; the broken pipe that follows is expected.
  const feeding = pipeline([source, ...stages, child.stdin]).catch(() => undefined);
  const code = await exit;
  // What pg_restore left unread is not wanted: cut every stage, or a feed paused on a pipe nobody
  // reads any more would never settle.
  for (const s of [source, ...stages, child.stdin]) s.destroy();
  await feeding;
  if (code !== 0) {
    throw new IntegrityError(
      `The stored archive's table of contents is unreadable: ${stderr.trim().split('\n')[0] ?? ''}`,
      {
        hint: 'The dump is damaged; nothing was kept. Try again.',
      },
    );
  }
}
