import { PassThrough, type Readable } from 'node:stream';
import { DbBackupError, errorMessage, IntegrityError, SafetyError } from '../errors.js';
import type { FileTarget, WriteGroup } from '../pipeline/filter-group.js';
import { putBuffer, type ObjectInfo, type PutOptions, type Storage } from '../storage/storage.js';
import { cleanupRequests } from '../storage/transport.js';
import { ExitCode } from '../exit-codes.js';

/**
 * The commit protocol of everything dbbackup stores as one unit (a backup and its sidecars, a base
 * backup's archives and metadata, a WAL segment): objects are put, then read back (size, and a
 * checksum where asked), the metadata that makes the unit valid is written last, and on a failure
 * or an interrupt everything this commit wrote is deleted again, metadata first, so that no crash
 * leaves something that looks valid. Several stores are written from the same stream at once.
 */

export const INTERRUPTED_EXIT_CODE = ExitCode.Interrupted;

export class InterruptedError extends DbBackupError {
  constructor(what = 'nothing was kept') {
    super(`Interrupted; ${what}`, { exitCode: INTERRUPTED_EXIT_CODE });
  }
}

/**
 * Starts a write group, given the file it may write itself when the unit's only store is a directory
 * (Storage.createFile); a group that does not take it (`written` unset) is stored as by put.
 */
export type GroupStarter = (file?: FileTarget) => WriteGroup;

export interface CommitOptions {
  /** An interrupt (SIGINT/SIGTERM): the running put is stopped and the unit rolled back. */
  signal?: AbortSignal;
  /**
   * Whether what this commit put in `store` is provably its own (e.g. its run token in the object's
   * metadata). A store that answers false is left alone by a rollback: a server that ignores
   * conditional writes may have let another writer replace the object, and that one is theirs.
   */
  owns?: (store: Storage) => Promise<boolean>;
}

export class Commit {
  /** Keys written so far, in order, with the stores that took each. */
  private readonly written: Array<{ key: string; stores: Set<Storage> }> = [];
  /** Every key a put was attempted for: its directory may have been created. */
  private readonly touched = new Set<string>();
  /** Write groups being put now (several at once: the members of a cluster backup). */
  private readonly running = new Set<WriteGroup>();
  private readonly onAbort = (): void => this.running.forEach((g) => g.abort());

  constructor(
    readonly stores: readonly Storage[],
    private readonly options: CommitOptions = {},
  ) {
    if (!stores.length) throw new Error('Commit needs at least one store');
    options.signal?.addEventListener('abort', this.onAbort);
  }

  get interrupted(): boolean {
    return Boolean(this.options.signal?.aborted);
  }

  /** Stop here if an interrupt arrived. */
  checkpoint(): void {
    if (this.interrupted) throw new InterruptedError();
  }

  /**
   * Store `body` under `key` in every store (never replacing an object: noOverwrite). With a write
   * group, a failure is reported as the group judges it (the producing program's own error first).
   */
  async put(
    key: string,
    body: Readable | WriteGroup | GroupStarter,
    options: PutOptions = {},
  ): Promise<ObjectInfo> {
    this.checkpoint();
    if (typeof body === 'function') return this.putStarted(key, body, options);
    const group = isGroup(body) ? body : undefined;
    const readable = group ? group.readable : (body as Readable);
    if (group) this.running.add(group);
    this.touched.add(key);
    try {
      const infos = await this.putAll(key, readable, { noOverwrite: true, ...options });
      this.checkpoint();
      const first = infos[0];
      if (!first) throw new Error('no store');
      return first;
    } catch (err) {
      const reported = group ? await group.fail(err) : err;
      throw this.interrupted ? new InterruptedError() : reported;
    } finally {
      if (group) this.running.delete(group);
    }
  }

  /** put of a group that may write the object's file itself. */
  private async putStarted(key: string, start: GroupStarter, options: PutOptions): Promise<ObjectInfo> {
    const [only] = this.stores;
    this.touched.add(key);
    const draft =
      this.stores.length === 1 && only?.createFile
        ? await only.createFile(key, { noOverwrite: true, ...options })
        : undefined;
    let group: WriteGroup;
    try {
      group = start(draft);
    } catch (err) {
      await draft?.discard();
      throw err;
    }
    if (!draft || !only || !group.written) {
      await draft?.discard();
      return this.put(key, group, options);
    }
    this.running.add(group);
    try {
      await group.written;
      this.checkpoint();
      const info = await draft.commit();
      this.record(key, only);
      return info;
    } catch (err) {
      await draft.discard();
      const reported = await group.fail(err);
      throw this.interrupted ? new InterruptedError() : reported;
    } finally {
      this.running.delete(group);
    }
  }

  private async putAll(key: string, readable: Readable, options: PutOptions): Promise<ObjectInfo[]> {
    const [only] = this.stores;
    if (this.stores.length === 1 && only) {
      const info = await only.put(key, readable, options);
      this.record(key, only);
      return [info];
    }
    // One branch per store; the slowest sets the pace, and any failure stops every upload.
    const branches = this.stores.map(() => new PassThrough({ highWaterMark: 1024 * 1024 }));
    readable.on('error', (err) => branches.forEach((b) => b.destroy(err)));
    for (const b of branches) readable.pipe(b);
    const results = await Promise.allSettled(
      this.stores.map((st, i) => st.put(key, branches[i] ?? new PassThrough(), options)),
    );
    // Recorded even if only some stores took it: a rollback must remove those (and only those).
    results.forEach((r, i) => {
      const st = this.stores[i];
      if (r.status === 'fulfilled' && st) this.record(key, st);
    });
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      readable.destroy();
      branches.forEach((b) => b.destroy());
      throw failed.reason;
    }
    return results.map((r) => (r as PromiseFulfilledResult<ObjectInfo>).value);
  }

  /** A small object (sidecar, manifest) in every store. */
  async putSmall(key: string, content: string | Buffer, options: PutOptions = {}): Promise<void> {
    this.checkpoint();
    this.touched.add(key);
    for (const st of this.stores) {
      await putBuffer(st, key, content, { noOverwrite: true, ...options });
      this.record(key, st);
    }
  }

  /**
   * Give up one object of the unit (a cluster member that failed while the others go on): deleted
   * from the stores that took it, and no longer part of the unit. Never throws.
   */
  async discard(key: string): Promise<void> {
    const i = this.written.findIndex((w) => w.key === key);
    const entry = this.written[i];
    if (!entry) return;
    this.written.splice(i, 1);
    await cleanupRequests(async () => {
      for (const st of entry.stores) {
        if (this.options.owns && !(await this.options.owns(st).catch(() => false))) continue;
        await st.delete(key).catch(() => undefined);
      }
    });
  }

  private record(key: string, store: Storage): void {
    const entry = this.written.find((w) => w.key === key);
    if (entry) entry.stores.add(store);
    else this.written.push({ key, stores: new Set([store]) });
  }

  /**
   * Read back what a put stored: every store must hold `key` with `bytes` bytes; `readBack`, when
   * given, checks the content itself (a header, a full checksum).
   */
  async verify(
    key: string,
    bytes: number,
    readBack?: (store: Storage, key: string) => Promise<void>,
  ): Promise<void> {
    this.checkpoint();
    for (const st of this.stores) {
      const info = await st.stat(key);
      if (!info)
        throw new IntegrityError(`${where(st, key)} is missing right after it was written`, {
          hint: 'The storage lost the object; nothing was kept. Check the storage and run the command again.',
        });
      if (info.size !== bytes)
        throw new IntegrityError(
          `${where(st, key)} holds ${info.size} bytes right after ${bytes} were written`,
          { hint: 'The storage did not keep what was sent; nothing was kept.' },
        );
      if (readBack) await readBack(st, key);
    }
  }

  /** Write the unit's metadata, last of all: from here on the unit is valid. */
  async finish(metadataKey: string, content: string | Buffer, options: PutOptions = {}): Promise<void> {
    this.checkpoint();
    await this.putSmall(metadataKey, content, options);
    this.options.signal?.removeEventListener('abort', this.onAbort);
  }

  /**
   * Delete what this commit wrote, newest first (the metadata, when written, goes first), in every
   * store. Returns what could not be deleted, for a truthful message.
   */
  async rollback(): Promise<string[]> {
    this.options.signal?.removeEventListener('abort', this.onAbort);
    const left: string[] = [];
    // Also after an interrupt: the clean-up requests must still reach the store.
    await cleanupRequests(async () => {
      const owned = new Map<Storage, boolean>();
      const owns = async (st: Storage): Promise<boolean> => {
        if (!this.options.owns) return true;
        let v = owned.get(st);
        if (v === undefined) {
          v = await this.options.owns(st).catch(() => false);
          owned.set(st, v);
        }
        return v;
      };
      for (const { key, stores } of [...this.written].reverse()) {
        for (const st of this.stores) {
          if (!stores.has(st) || !(await owns(st))) continue;
          await st.delete(key).catch((err: unknown) => left.push(`${where(st, key)}: ${errorMessage(err)}`));
        }
      }
      for (const st of this.stores) await removeEmptyDirs(st, [...this.touched]);
    });
    this.touched.clear();
    this.written.length = 0;
    return left;
  }

  /** Keys written so far (for messages and tests). */
  get keys(): readonly string[] {
    return this.written.map((w) => w.key);
  }
}

/**
 * Runs `work` as one unit: when it throws (or an interrupt stops it), everything it wrote is
 * deleted and the error rethrown; an interrupt is reported as such (exit 130), and a rollback that
 * could not delete everything says what it left.
 */
export async function commitUnit<T>(
  stores: readonly Storage[],
  options: CommitOptions,
  work: (commit: Commit) => Promise<T>,
): Promise<T> {
  const commit = new Commit(stores, options);
  try {
    return await work(commit);
  } catch (err) {
    const left = await commit.rollback();
    const reported = commit.interrupted && !(err instanceof InterruptedError) ? new InterruptedError() : err;
    if (left.length) {
      throw new SafetyError(`${errorMessage(reported)}; and some of what was written could not be removed`, {
        exitCode: reported instanceof DbBackupError ? reported.exitCode : ExitCode.Failure,
        hint: 'Delete these objects by hand: they are not a valid backup.',
        details: left,
        cause: reported,
      });
    }
    throw reported;
  }
}

/** A directory a put created for the unit is removed once empty again (local stores only). */
async function removeEmptyDirs(st: Storage, keys: readonly string[]): Promise<void> {
  if (!st.localPath) return;
  const { rmdir } = await import('node:fs/promises');
  const dirs = new Set<string>();
  for (const key of keys) {
    for (
      let dir = key.slice(0, key.lastIndexOf('/'));
      dir;
      dir = dir.slice(0, Math.max(0, dir.lastIndexOf('/')))
    )
      dirs.add(dir);
  }
  // Deepest first; rmdir refuses a directory that still holds anything, which is what we want.
  for (const dir of [...dirs].sort((a, b) => b.length - a.length))
    await rmdir(st.localPath(dir)).catch(() => undefined);
}

function isGroup(body: Readable | WriteGroup): body is WriteGroup {
  return typeof (body as WriteGroup).fail === 'function' && 'readable' in body;
}

function where(st: Storage, key: string): string {
  return `${st.location.replace(/\/$/, '')}/${key}`;
}
