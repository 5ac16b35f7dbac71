import os from 'node:os';
import { Writable } from 'node:stream';
import type { DetectedFormat } from '../catalog/format.js';
import type { DumpFormat, Engine } from '../catalog/naming.js';
import { TRAILER_BYTES, TRAILERS, type Trailer } from '../catalog/trailers.js';
import { createDecryptStream, type KeyUnlocker } from '../crypto/index.js';
import { checkUnlocks, readStoredHeader } from '../crypto/stored-header.js';
import { findPgTool, majorVersion, parseVersion, toolVersion } from '../engines/tools.js';
import { errorMessage, IntegrityError, MissingToolError } from '../errors.js';
import type { CompressionAlgorithm } from '../pipeline/compression.js';
import { runReadGroup } from '../pipeline/filter-group.js';
import { Sampler } from '../pipeline/hash.js';
import { drainOrClose, ToolProcess } from '../pipeline/process.js';
import { sniff } from '../pipeline/sniff.js';
import type { Storage } from '../storage/storage.js';
import { engineFamily } from '../engines/family.js';

/**
 * What a deep check expects to find: a database dump (its kind is read from its content), or the
 * globals file of a cluster backup (roles and grants; its engine comes from the manifest).
 */
export type DeepExpectation = { kind: 'dump' } | { kind: 'globals'; engine: Engine };

/** Keys for encrypted backups, loaded on first need (a stray key variable must not break plaintext checks). */
export type UnlockerSource = () => Promise<readonly KeyUnlocker[]>;

/** What a deep read of one stored file established. */
export interface DeepReport {
  /** SHA-256 and size of the stored bytes, as read. */
  sha256: string;
  bytes: number;
  encrypted: boolean;
  /** Chunks that authenticated (encrypted backups), or null. */
  chunks: number | null;
  compression: CompressionAlgorithm;
  /** Bytes of the dump itself, after decryption and decompression. */
  dumpBytes: number;
  engine: 'postgres' | 'mysql' | null;
  format: DumpFormat | null;
  /** How the dump was shown to be complete, e.g. `pg_restore read the data of 12 tables`. */
  completeness: string;
}

/** Appended to the hint when an encrypted backup is verified with --deep but no key. */
export const NO_KEY_HINT = 'Without --deep, verify-backup checks its checksum and needs no key.';

type Checker = { kind: 'pg_restore'; file: string } | { kind: 'trailer'; trailer: Trailer };

function family(engine: Engine | null): 'postgres' | 'mysql' | null {
  return engine === null ? null : engineFamily(engine).id;
}

/**
 * Reads a stored backup from end to end in one pass: SHA-256 of the stored bytes, every chunk
 * authenticated (encrypted backups), the whole stream decompressed, and the dump shown complete —
 * a PostgreSQL custom archive by `pg_restore --file=/dev/null` reading every data block, SQL by
 * its completion trailer. Streamed: memory stays at a few buffers, nothing is written to disk.
 *
 * Throws IntegrityError when the content is damaged or incomplete, EncryptionKeyError when the
 * keys do not open it, MissingToolError when a needed program is missing or too old.
 */
export async function deepRead(
  storage: Storage,
  key: string,
  location: string,
  expect: DeepExpectation,
  unlock: UnlockerSource,
): Promise<DeepReport> {
  const header = await readStoredHeader(storage, key);
  let unlockers: readonly KeyUnlocker[] = [];
  if (header) {
    unlockers = await unlock();
    await checkUnlocks(location, header, unlockers, '--deep', NO_KEY_HINT);
  }
  const detected = await sniff(storage, key, async () => unlockers);
  const checker = await checkerFor(detected, expect);

  const decrypt = detected.encrypted ? createDecryptStream(unlockers) : undefined;
  const tail = new Sampler(TRAILER_BYTES);
  const restore = checker.kind === 'pg_restore' ? new PgRestoreCheck(checker.file) : undefined;
  // No process after the decoder: the sink never stops consuming (PgRestoreCheck discards once
  // pg_restore is gone), so the read runs to its end or to an error and judges the whole stream.
  const sink = restore ? restore.sink : new Writable({ write: (_c, _e, cb) => cb() });
  // The read group judges the stages in the order that explains the others: the storage read,
  // decryption, the compressed stream (Node's gunzip for gzip: it fails on trailing data).
  const read = await runReadGroup({
    source: await storage.get(key),
    decrypt,
    compression: detected.compression,
    strictGzip: true,
    hashDecoded: false,
    decodedTaps: [tail],
    sink: { kind: 'stream', stream: sink },
    label: location,
    damagedHint: DAMAGED_HINT,
  }).then(
    (r) => ({ r }),
    (err: unknown) => ({ err }),
  );
  const restored = await (restore?.finish() ?? Promise.resolve()).then(
    () => undefined,
    (err: unknown) => ({ err }),
  );
  // A program that could not start says nothing about the backup.
  if (restored?.err instanceof MissingToolError) throw restored.err;
  if ('err' in read) throw read.err;
  if (tail.bytes === 0) throw damaged('the dump is empty');
  let completeness: string;
  if (restore) {
    if (restored) {
      throw damaged(
        `the archive is incomplete or damaged: ${errorMessage(restored.err).replace(/^pg_restore failed \(exit code \d+\):\s*/, '')}`,
      );
    }
    completeness =
      restore.tables === 0
        ? 'pg_restore read the whole archive (it holds no table data)'
        : `pg_restore read the data of ${restore.tables} table${restore.tables === 1 ? '' : 's'}`;
  } else if (checker.kind === 'trailer') {
    const found = checker.trailer.pattern.exec(tail.tail.toString('utf8'));
    if (!found) {
      throw damaged(
        `the dump does not end with its completion trailer ("${checker.trailer.text}"): it is incomplete`,
      );
    }
    completeness = `it ends with "${found[0].trim()}"`;
  } else {
    throw new Error('deepRead: no completeness check');
  }
  return {
    sha256: read.r.storedSha256,
    bytes: read.r.storedBytes,
    encrypted: detected.encrypted,
    chunks: decrypt ? decrypt.chunks : null,
    compression: detected.compression,
    dumpBytes: tail.bytes,
    engine: family(expect.kind === 'globals' ? expect.engine : detected.engine),
    format: expect.kind === 'globals' ? 'plain' : detected.format,
    completeness,
  };
}

const DAMAGED_HINT = 'Do not rely on this backup; take a new one (or use another copy).';

function damaged(what: string): IntegrityError {
  return new IntegrityError(what, { hint: DAMAGED_HINT });
}

async function checkerFor(detected: DetectedFormat, expect: DeepExpectation): Promise<Checker> {
  if (expect.kind === 'globals') {
    return {
      kind: 'trailer',
      trailer: TRAILERS[engineFamily(expect.engine).globalsTrailer],
    };
  }
  if (!detected.engine || !detected.format) {
    throw damaged('the content is not a PostgreSQL or MySQL dump (its first bytes are not recognised)');
  }
  // Only custom archives (PostgreSQL's) need their tool; an SQL dump is judged by its trailer.
  if (detected.format === 'plain')
    return { kind: 'trailer', trailer: TRAILERS[engineFamily(detected.engine).plainTrailer] };
  const file = await findPgTool('pg_restore');
  if (!file) {
    throw new MissingToolError('verify-backup --deep needs pg_restore to read PostgreSQL custom archives', {
      hint: 'Install the PostgreSQL client programs (apt-get install postgresql-client) or set DBBACKUP_PG_BINDIR.',
    });
  }
  const raw = detected.pgHeader?.dumpVersion;
  const dumpVersion = raw ? parseVersion(raw) : null;
  const version = await toolVersion(file);
  if (dumpVersion && version && majorVersion(version) < majorVersion(dumpVersion)) {
    throw new MissingToolError(
      `The archive was written by pg_dump ${dumpVersion}; the local pg_restore ${version} cannot read it`,
      {
        hint: `Install the PostgreSQL ${majorVersion(dumpVersion)} client programs (or newer), or set DBBACKUP_PG_BINDIR.`,
      },
    );
  }
  return { kind: 'pg_restore', file };
}

/**
 * `pg_restore --file=/dev/null`, fed through its stdin: it reads the whole archive, every data
 * block included, and fails on anything missing. It counts the tables whose data it read. If it
 * stops reading, what follows is discarded, so the stages before it still run to the end and are
 * judged on the whole stream.
 */
class PgRestoreCheck {
  tables = 0;
  readonly sink: Writable;
  private readonly tool: ToolProcess;

  constructor(file: string) {
    this.tool = new ToolProcess(
      { file, args: ['--verbose', `--file=${os.devNull}`], env: { ...process.env }, name: 'pg_restore' },
      ['pipe', 'ignore', 'pipe'],
      (line) => {
        if (/^pg_restore: processing data for table /.test(line)) this.tables++;
        return /^pg_restore: error: /.test(line) ? 'error' : 'info';
      },
    );
    const stdin = this.tool.child.stdin;
    if (!stdin) throw new Error('pg_restore has no stdin');
    let gone = false;
    stdin.on('error', () => (gone = true));
    stdin.on('close', () => (gone = true));
    this.sink = new Writable({
      highWaterMark: 1024 * 1024,
      write(chunk: Buffer, _enc, cb) {
        if (gone || stdin.write(chunk)) return cb();
        void drainOrClose(stdin).then(() => cb());
      },
      final(cb) {
        if (!gone) stdin.end();
        cb();
      },
      destroy(err, cb) {
        // Also called after a normal finish (autoDestroy): stdin may still hold data then, which
        // end() in final() delivers. Only a failure cuts pg_restore off.
        if (err && !gone) stdin.destroy();
        cb(err);
      },
    });
  }

  /** pg_restore's verdict; it has read everything (or failed) once it exits. */
  finish(): Promise<void> {
    return this.tool.done;
  }
}
