import { Readable } from 'node:stream';
import type pg from 'pg';
import { IntegrityError } from '../errors.js';
import { parseLsn } from './wal-names.js';

/**
 * BASE_BACKUP over a replication session, for a cluster with tablespaces outside its data
 * directory: pg_basebackup writes one tar per tablespace and cannot send more than one to stdout
 * ("can only write single tablespace to stdout"), and with `-D <dir>` it insists on an empty
 * directory, so named pipes cannot be laid out for it beforehand. The server (15+) sends every
 * archive in one COPY stream: `n` starts an archive (its name and tablespace location), `d` carries
 * its bytes, `p` reports progress, `m` starts the backup_manifest. Each archive becomes a stream
 * that the caller stores; the raw bytes pass through this process (the one-tablespace path keeps
 * them in kernel pipes, see base-backup.ts).
 */

export interface ServerArchive {
  /** `base.tar`, or `<oid>.tar` for a tablespace. */
  name: string;
  /** The tablespace's directory on the server; null for the data directory. */
  location: string | null;
  stream: Readable;
}

export interface BaseBackupResult {
  startLsn: bigint;
  startTimeline: number;
  stopLsn: bigint;
  stopTimeline: number;
  tablespaces: Array<{ oid: string; location: string }>;
  manifest: Buffer;
}

/** The command pg_basebackup 15 sends for `-Ft -X none -c fast` with a manifest. */
export function baseBackupCommand(label: string): string {
  const quoted = `'${label.replaceAll("'", "''")}'`;
  return `BASE_BACKUP (LABEL ${quoted}, CHECKPOINT 'fast', WAIT true, MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C', TABLESPACE_MAP true)`;
}

type Row = Array<string | null>;

/**
 * Runs BASE_BACKUP on a replication connection. `store` is called for each archive as it starts
 * and must consume its stream; the next archive is stored once the previous one is. The result
 * comes when the server has finished (it waits for the stop segment to be archived) and every
 * archive is stored.
 */
export function runBaseBackup(
  client: pg.Client,
  label: string,
  store: (archive: ServerArchive) => Promise<void>,
  maxManifest = 64 * 1024 * 1024,
): Promise<BaseBackupResult> {
  return new Promise<BaseBackupResult>((resolve, reject) => {
    const results: Row[][] = [];
    let current: Readable | undefined;
    let manifest: Buffer[] | undefined;
    let manifestBytes = 0;
    let stored: Promise<void> = Promise.resolve();
    let failed: Error | undefined;
    let socket: { pause(): void; resume(): void; destroy(): void } | undefined;
    const fail = (err: Error): void => {
      if (failed) return;
      failed = err;
      current?.destroy(err);
      socket?.destroy();
      reject(err);
    };
    const endArchive = (): void => {
      current?.push(null);
      current = undefined;
    };
    const onData = (chunk: Buffer): void => {
      const type = chunk[0];
      if (type === 0x6e /* n */) {
        endArchive();
        const name = cString(chunk, 1);
        const location = cString(chunk, 2 + Buffer.byteLength(name));
        const stream = new Readable({ highWaterMark: 1024 * 1024, read: () => socket?.resume() });
        current = stream;
        const archive = { name, location: location || null, stream };
        stored = stored.then(() => store(archive));
        stored.catch((err: unknown) => fail(err instanceof Error ? err : new Error(String(err))));
      } else if (type === 0x64 /* d */) {
        // The parser reuses its buffer: the bytes are copied before they are queued.
        const data = Buffer.from(chunk.subarray(1));
        if (manifest) {
          manifestBytes += data.length;
          if (manifestBytes > maxManifest)
            return fail(new IntegrityError('The backup_manifest is over 64 MiB: not supported yet'));
          manifest.push(data);
        } else if (!current) fail(new IntegrityError('BASE_BACKUP sent data before an archive began'));
        else if (!current.push(data)) socket?.pause();
      } else if (type === 0x6d /* m */) {
        endArchive();
        manifest = [];
      }
      // p: progress, not used.
    };
    const query: pg.Submittable & Record<string, unknown> = {
      submit(connection: pg.Connection) {
        socket = (connection as unknown as { stream: typeof socket }).stream;
        (connection as unknown as { query(text: string): void }).query(baseBackupCommand(label));
      },
      handleRowDescription() {
        results.push([]);
      },
      handleDataRow(msg: { fields: Row }) {
        results.at(-1)?.push(msg.fields);
      },
      handleCopyData(msg: { chunk: Buffer }) {
        if (!failed) onData(msg.chunk);
      },
      handleCommandComplete() {},
      handleEmptyQuery() {},
      handlePortalSuspended() {},
      handleCopyInResponse() {
        fail(new IntegrityError('BASE_BACKUP asked for data'));
      },
      handleError(err: Error) {
        fail(err);
      },
      handleReadyForQuery() {
        if (failed) return;
        endArchive();
        stored.then(
          () => {
            try {
              resolve(finish(results, manifest));
            } catch (err) {
              fail(err as Error);
            }
          },
          () => undefined,
        );
      },
    };
    client.query(query);
  });
}

function finish(results: Row[][], manifest: Buffer[] | undefined): BaseBackupResult {
  const [start, spaces, stop] = results;
  const startRow = start?.[0];
  const stopRow = stop?.[0];
  const startLsn = parseLsn(startRow?.[0] ?? '');
  const stopLsn = parseLsn(stopRow?.[0] ?? '');
  if (!startRow || !stopRow || startLsn === undefined || stopLsn === undefined)
    throw new IntegrityError('BASE_BACKUP did not return its start and stop positions');
  if (!manifest) throw new IntegrityError('BASE_BACKUP sent no backup_manifest');
  return {
    startLsn,
    startTimeline: Number(startRow[1]),
    stopLsn,
    stopTimeline: Number(stopRow[1]),
    tablespaces: (spaces ?? []).flatMap((r) => (r[0] && r[1] ? [{ oid: r[0], location: r[1] }] : [])),
    manifest: Buffer.concat(manifest),
  };
}

function cString(buf: Buffer, start: number): string {
  const end = buf.indexOf(0, start);
  return buf.toString('utf8', start, end < 0 ? buf.length : end);
}
