import { Transform, type Readable } from 'node:stream';
import { ByteMeter } from '../pipeline/progress.js';
import type { StepReporter } from '../restore/single.js';
import type { Storage } from '../storage/storage.js';
import type { BaseWindow } from './analysis.js';
import type { StoredBinlog } from './binlog/inventory.js';
import type { PlannedRestore } from './binlog/restore-plan.js';
import {
  executePitrRestore,
  type PitrRestoreInput,
  type PitrRestorePlan,
  type RestoreOutcome,
} from './restore.js';

/*
 * Byte progress of a point-in-time restore, for `restore pitr --progress` and the terminal UI alike.
 * What a restore reads from its archive (the base backup's objects, the binlogs, twice: checked,
 * then replayed) is counted where the restore reads it, in the Storage it is given: the restore
 * steps themselves (executePitrRestore, executePhysicalRestore, executeLogicalRestore) stay as they
 * are, and the steps are told apart by the objects they read.
 */

/** One step of a restore as the stored objects it reads: its name in progress, and its total bytes. */
export interface ReadStep {
  name: string;
  keys: ReadonlySet<string>;
  total: number;
}

/**
 * A reporter that never has two steps open: a step begun ends the one still open as done (the
 * restore of a dump reports its own steps between the binlog steps of a logical PITR).
 */
export function serialReporter(reporter: StepReporter): StepReporter & { finish(outcome: string): void } {
  let open = false;
  return {
    begin(step, meter, total) {
      if (open) reporter.end('done');
      open = true;
      reporter.begin(step, meter, total);
    },
    end(outcome) {
      if (!open) return;
      open = false;
      reporter.end(outcome);
    },
    finish(outcome) {
      if (!open) return;
      open = false;
      reporter.end(outcome);
    },
  };
}

/**
 * `storage` whose reads of the steps' objects are counted and reported: a read of an object of a
 * later step (or one the current step has read already: the second pass over the binlogs) begins
 * that step; a step ends as done once each of its objects was read to its end. Other reads (the
 * metadata, the inventory) pass uncounted.
 */
export function meteredStorage(
  storage: Storage,
  steps: readonly ReadStep[],
  reporter: StepReporter & { finish(outcome: string): void },
  signal?: AbortSignal,
): Storage {
  let at = -1;
  let meter: ByteMeter | undefined;
  let started = new Set<string>();
  let ended = new Set<string>();
  const stepFor = (key: string): number => {
    if (at >= 0 && steps[at]?.keys.has(key) && !started.has(key)) return at;
    return steps.findIndex((s, n) => n > at && s.keys.has(key));
  };
  const counted = (key: string, source: Readable): Readable => {
    const n = stepFor(key);
    const step = steps[n];
    if (!step) return source;
    if (n !== at) {
      at = n;
      started = new Set();
      ended = new Set();
      meter = new ByteMeter(signal);
      reporter.begin(step.name, meter, step.total);
    }
    started.add(key);
    const m = meter as ByteMeter;
    const keys = step.keys;
    const mine = at;
    const tap = new Transform({
      transform(chunk: Buffer, _e, cb) {
        m.add(chunk.length);
        cb(null, chunk);
      },
      flush(cb) {
        ended.add(key);
        if (at === mine && ended.size === keys.size) reporter.end('done');
        cb();
      },
    });
    source.on('error', (err) => tap.destroy(err));
    return source.pipe(tap);
  };
  const local = storage.localPath?.bind(storage);
  const incomplete = storage.listIncompleteUploads?.bind(storage);
  const abort = storage.abortIncompleteUpload?.bind(storage);
  return {
    location: storage.location,
    put: (key, body, options) => storage.put(key, body, options),
    get: async (key, range) => counted(key, await storage.get(key, range)),
    stat: (key) => storage.stat(key),
    list: (prefix) => storage.list(prefix),
    delete: (key) => storage.delete(key),
    ...(local ? { localPath: local } : {}),
    ...(incomplete ? { listIncompleteUploads: incomplete } : {}),
    ...(abort ? { abortIncompleteUpload: abort } : {}),
  };
}

const sum = (xs: ReadonlyArray<{ sizeBytes?: number; storedBytes?: number }>): number =>
  xs.reduce((n, x) => n + (x.storedBytes ?? x.sizeBytes ?? 0), 0);

/** PostgreSQL: one step, the base backup's objects (a chain's, full first) read and extracted. */
export function pitrReadSteps(plan: PitrRestorePlan, chosen: BaseWindow): ReadStep[] {
  const meta = chosen.meta;
  if (!meta) return [];
  // What executePitrRestore extracts of the backup itself: its data directory's tar and tablespaces'.
  const own = meta.files.filter((f) => f.role === 'base' || /^[0-9]+$/.test(f.role));
  const members = plan.chain && plan.chain.members.length > 1 ? plan.chain.members : [];
  const files = members.length ? members.flatMap((m) => m.files) : own;
  const keys = new Set([...files, ...own].map((f) => f.key));
  return [{ name: `reading ${meta.name}`, keys, total: sum(files) }];
}

/**
 * MariaDB: the binlogs checked end to end, the physical chain extracted, then the binlogs replayed
 * (a logical backup: into each database in turn, its dump restored before).
 */
export function binlogReadSteps(planned: PlannedRestore): ReadStep[] {
  const keysOf = (bs: readonly StoredBinlog[]): Set<string> => new Set(bs.map((b) => b.dataKey));
  const steps: ReadStep[] = [];
  const all = planned.binlogs;
  if (all.length)
    steps.push({ name: `checking ${all.length} binlog(s)`, keys: keysOf(all), total: sum(all) });
  const files = planned.chain.flatMap((m) => m.files);
  if (files.length)
    steps.push({
      name: `extracting ${planned.plan.base?.name ?? 'the backup'}`,
      keys: new Set(files.map((f) => f.key)),
      total: sum(files),
    });
  const replays = planned.replays ?? [{ database: '', binlogs: all }];
  for (const r of replays.filter((x) => x.binlogs.length))
    steps.push({
      name: `replaying ${r.binlogs.length} binlog(s)${r.database ? ` into ${r.database}` : ''}`,
      keys: keysOf(r.binlogs),
      total: sum(r.binlogs),
    });
  return steps;
}

/**
 * Runs `fn` on `storage` metered by `steps` (reported to `reporter`, one step open at a time; the
 * reporter it is given reports between them), the last step ended as done or failed with it.
 */
export async function withReadProgress<T>(
  storage: Storage,
  steps: readonly ReadStep[],
  reporter: StepReporter | undefined,
  signal: AbortSignal | undefined,
  fn: (storage: Storage, reporter: StepReporter | undefined) => Promise<T>,
): Promise<T> {
  if (!reporter) return fn(storage, undefined);
  const serial = serialReporter(reporter);
  try {
    const result = await fn(meteredStorage(storage, steps, serial, signal), serial);
    serial.finish('done');
    return result;
  } catch (err) {
    serial.finish('failed');
    throw err;
  }
}

/** executePitrRestore with the bytes of its base backup reported (restore pitr --progress, the UI). */
export function executePitrRestoreReported(
  input: PitrRestoreInput,
  plan: PitrRestorePlan,
  chosen: BaseWindow,
  signal: AbortSignal | undefined,
  reporter: StepReporter | undefined,
): Promise<RestoreOutcome> {
  return withReadProgress(input.storage, pitrReadSteps(plan, chosen), reporter, signal, (storage) =>
    executePitrRestore({ ...input, storage }, plan, chosen, signal),
  );
}
