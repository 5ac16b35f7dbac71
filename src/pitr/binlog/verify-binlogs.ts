import { Writable } from 'node:stream';
import type { KeyUnlocker } from '../../crypto/index.js';
import { DbBackupError, errorMessage, SafetyError } from '../../errors.js';
import { ExitCode } from '../../exit-codes.js';
import type { Storage } from '../../storage/storage.js';
import { applied, BinlogScanner, EVENT, formatGtid, type GtidState } from './events.js';
import type { StoredBinlog } from './inventory.js';
import { readStoredBinlog } from './read.js';
import type { ReplayTarget } from './replay.js';

/** What checkBinlogsFor needs of a restore's input. */
export interface CheckInput {
  storage: Storage;
  target: ReplayTarget;
  unlockers: () => Promise<readonly KeyUnlocker[]>;
  signal?: AbortSignal;
  onStep?: (line: string) => void;
}

/**
 * Reads every binlog the replay needs, end to end (stored checksum, decryption, decompression, raw
 * checksum), before anything is changed: a damaged binlog is found before a server is touched.
 */
export async function verifyBinlogs(
  storage: Storage,
  files: readonly StoredBinlog[],
  unlockers: () => Promise<readonly KeyUnlocker[]>,
  signal?: AbortSignal,
  /** What reads each file's raw bytes (default: nothing; a check may scan its events). */
  sinkFor: (b: StoredBinlog) => Writable = () => new Writable({ write: (_c, _e, cb) => cb() }),
): Promise<void> {
  for (const b of files) {
    try {
      const sink = sinkFor(b);
      await readStoredBinlog(storage, b, { kind: 'stream', stream: sink }, unlockers, signal);
    } catch (err) {
      throw new DbBackupError(`Binlog ${b.file} (${b.dataKey}) cannot be used: ${errorMessage(err)}`, {
        exitCode: err instanceof DbBackupError ? err.exitCode : ExitCode.Failure,
        hint: 'Nothing was changed. The archive copy is damaged or the keys are wrong: "dbbackup verify-backup" and "binlog status" show more.',
        cause: err,
      });
    }
  }
}

/** A transaction a backup already holds although it is stamped at or after a time target. */
interface TooNew {
  what: string;
  gtid: string;
  time: string;
  file: string;
}

/**
 * Scans a binlog's events as it is verified: a transaction stamped at or after the time target that
 * a backup's GTID state already contains means the backup's snapshot lies after the target (a dump
 * started during or after it): rolling forward cannot undo it, so the restore is refused.
 */
export class SnapshotAfterTarget {
  readonly found = new Map<string, TooNew>();

  constructor(
    private readonly time: Date,
    private readonly states: ReadonlyArray<{ what: string; from: GtidState }>,
  ) {}

  sink(b: StoredBinlog): Writable {
    const scanner = new BinlogScanner(b.file);
    const limit = this.time.getTime();
    return new Writable({
      write: (chunk: Buffer, _e, cb) => {
        try {
          for (const ev of scanner.push(chunk)) {
            if (ev.type !== EVENT.GTID || !ev.gtid || ev.timestamp * 1000 < limit) continue;
            for (const s of this.states)
              if (!this.found.has(s.what) && applied(s.from, ev.gtid))
                this.found.set(s.what, {
                  what: s.what,
                  gtid: formatGtid(ev.gtid),
                  time: new Date(ev.timestamp * 1000).toISOString(),
                  file: b.file,
                });
          }
          cb();
        } catch (err) {
          cb(err as Error);
        }
      },
    });
  }

  /** Throws the refusal when a backup holds a transaction after the target. */
  check(): void {
    const first = [...this.found.values()][0];
    if (!first) return;
    const all = [...this.found.values()].map(
      (f) => `${f.what} holds ${f.gtid} (stamped ${f.time}, in ${f.file})`,
    );
    throw new SafetyError(
      `Restore refused: ${first.what}'s snapshot lies after the target: it already holds ${first.gtid}, stamped ${first.time}`,
      {
        hint: 'Nothing was changed. Choose an older backup, or a later target.',
        details: all.length > 1 ? all : undefined,
      },
    );
  }
}

/**
 * Reads every binlog the replays need (checksums, keys) before anything is changed; with a time
 * target, also refuses a backup whose snapshot already holds a transaction stamped after it.
 */
export async function checkBinlogsFor(
  i: CheckInput,
  binlogs: readonly StoredBinlog[],
  states: ReadonlyArray<{ what: string; from: GtidState }>,
): Promise<void> {
  const t: ReplayTarget = i.target;
  const scan = t.kind === 'time' ? new SnapshotAfterTarget(t.time, states) : undefined;
  await verifyBinlogs(i.storage, binlogs, i.unlockers, i.signal, scan ? (b) => scan.sink(b) : undefined);
  scan?.check();
  if (binlogs.length) i.onStep?.(`Checked ${binlogs.length} binlog(s): every checksum matches`);
}
