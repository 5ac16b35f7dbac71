import { Writable, type Duplex, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import {
  memberProperties,
  readManifest,
  type ClusterManifest,
  type ClusterMember,
} from '../catalog/manifest.js';
import { creationProperties } from '../catalog/properties.js';
import { createDecryptStream, EncryptionKeyError, isEncrypted, type KeyUnlocker } from '../crypto/index.js';
import type { DatabaseEngine } from '../engines/engine.js';
import { IntegrityError, UsageError } from '../errors.js';
import { detectCompression, type CompressionAlgorithm } from '../pipeline/compression.js';
import { ByteMeter } from '../pipeline/progress.js';
import { sniff } from '../pipeline/sniff.js';
import { createZstdFramesDecompress } from '../pipeline/zstd-frames.js';
import type { Storage } from '../storage/storage.js';
import { hashStored } from '../verify/checksum.js';
import {
  includeFilter,
  KEEP,
  type ClusterRestoreInputs,
  type MemberContext,
  type MemberRunner,
  type SourcePlan,
} from './cluster.js';
import { streamRestore } from './feed.js';
import { engineFamily } from '../engines/family.js';

/**
 * dbbackup's own cluster backup as a source of the cluster-restore path: a manifest, a globals dump
 * and one dump per database, each its own stored object (so databases restore in parallel, each
 * streamed into its restore tool), checked against the manifest's SHA-256 before anything changes.
 */

export async function loadClusterManifest(storage: Storage, name: string): Promise<ClusterManifest> {
  const manifest = await readManifest(storage, name);
  if (!manifest) {
    throw new IntegrityError(
      `${storage.location.replace(/\/$/, '')}/${name} has no manifest: the cluster backup is incomplete or not a cluster backup`,
      {
        hint: 'Run "dbbackup list backups" to see complete backups.',
      },
    );
  }
  return manifest;
}

export interface DbbackupClusterPlan extends SourcePlan<ClusterMember> {
  manifest: ClusterManifest;
}

/** What is particular to a dbbackup cluster backup in the plan; changes nothing. */
export async function planDbbackupCluster(
  engine: DatabaseEngine,
  i: ClusterRestoreInputs,
  manifest?: ClusterManifest,
): Promise<DbbackupClusterPlan> {
  manifest ??= await loadClusterManifest(i.storage, i.name);
  if (engineFamily(manifest.engine) !== engineFamily(engine.engine)) {
    throw new UsageError(
      `${i.name} is a ${manifest.engine} cluster backup, but the target is ${engine.engine}`,
      'Omit --db-type: it is detected from the manifest.',
    );
  }
  const include = includeFilter(engine, i.include);
  const members = manifest.databases.filter((m) => m.status === 'ok' && include(m.database));
  // Every member's name reaches the server as the database to create: none may be cut short there.
  for (const m of members) engine.checkDatabaseName(m.database);
  if (!members.length) throw new UsageError('No database of the backup matches --include-database');
  const warnings: string[] = [];
  if (manifest.status === 'partial') {
    const missing = manifest.databases.filter((m) => m.status === 'failed').map((m) => m.database);
    warnings.push(
      `this backup is partial: ${missing.join(', ')} could not be dumped and will not be restored`,
    );
  }
  const dropped = (manifest.dropped ?? []).filter((d) => include(d.database));
  if (dropped.length)
    warnings.push(
      `${dropped.map((d) => d.database).join(', ')} ${dropped.length === 1 ? 'was' : 'were'} dropped while the backup ran: not in this backup`,
    );
  const stepsBefore: string[] = [];
  if (!i.force)
    stepsBefore.push(
      `verify the SHA-256 of globals and ${members.length} database dumps against the manifest`,
    );
  stepsBefore.push(`restore roles/users and grants (${manifest.globals.file})`);
  const stepsAfter = [
    `restore ${members.length} databases (${i.jobs} at a time), each with its owner, encoding, collation, grants and settings: ${members.map((m) => m.database).join(', ')}`,
  ];
  const grantsAgain = engineFamily(engine.engine).grantsAfterData;
  if (grantsAgain) stepsAfter.push('replay the grants on tables and columns (they need the restored tables)');
  const m = manifest;
  return {
    manifest,
    header: [
      `Cluster backup: ${i.storage.location.replace(/\/$/, '')}/${i.name} (${m.engine} ${m.server.version}, ${m.startedAt}, ${m.status})`,
      `Target:         ${engine.endpoint}`,
      ...(i.workdir
        ? [`Workdir:        ${i.workdir} (not needed: every member streams into its restore tool)`]
        : []),
    ],
    members,
    stepsBefore,
    stepsAfter,
    warnings,
    done: `${members.length} databases on ${engine.endpoint}`,
    globals: {
      label: 'roles and grants',
      again: grantsAgain,
      text: () => readSmall(i.storage, m.globals.file, i.unlockers),
    },
    verify: (progress) => verifyChecksums(i, m, members, progress),
    restoreMembers: (run, ctx) => restoreInParallel(engine, i, members, run, ctx),
  };
}

async function verifyChecksums(
  i: ClusterRestoreInputs,
  manifest: ClusterManifest,
  members: ClusterMember[],
  progress?: { note(text: string): void },
): Promise<void> {
  if (i.force) return;
  progress?.note(`verifying the checksums of globals and ${members.length} database dumps`);
  for (const [key, expected] of [
    [manifest.globals.file, manifest.globals.sha256],
    ...members.map((m) => [m.file ?? '', m.sha256 ?? '']),
  ] as Array<[string, string]>) {
    const actual = await hashStored(i.storage, key, new ByteMeter(i.signal));
    if (actual.sha256 !== expected) {
      throw new IntegrityError(`Checksum mismatch for ${key}: the cluster backup is corrupt`, {
        hint: 'Nothing was changed. Use another backup, or --force to restore anyway.',
      });
    }
  }
  progress?.note('checksums verified');
}

/** `--jobs` workers take the next member until none is left (or an interrupt). */
async function restoreInParallel(
  engine: DatabaseEngine,
  i: ClusterRestoreInputs,
  members: ClusterMember[],
  run: MemberRunner<ClusterMember>,
  ctx: MemberContext,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < members.length && !i.signal?.aborted) {
      const m = members[next++];
      if (!m?.file) continue;
      await run(m, (meter) => restoreMember(engine, i, ctx, m, meter));
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(i.jobs, members.length)) }, worker));
}

async function restoreMember(
  engine: DatabaseEngine,
  i: ClusterRestoreInputs,
  ctx: MemberContext,
  m: ClusterMember,
  meter: ByteMeter,
): Promise<void> {
  const file = m.file ?? '';
  const { signal, storage } = i;
  const { compression, decrypt } = await readerFor(storage, file, i.unlockers);
  const classify = (l: string): ReturnType<DatabaseEngine['classifyStderr']> => engine.classifyStderr(l);
  const { warn } = ctx;
  if (engineFamily(engine.engine).clusterFormat === 'custom') {
    // The maintenance database is restored into, not recreated; the others create themselves
    // from the archive with their owner, encoding, locale, grants and settings.
    const intoExisting = KEEP.includes(m.database);
    const cmd = await engine.restoreCommand({
      target: m.database,
      format: m.format,
      jobs: 1,
      noOwner: false,
      create: !intoExisting,
      cleanFirst: intoExisting && ctx.existing.includes(m.database),
    });
    await streamRestore(storage, file, compression, cmd, { classify, warn, decrypt, meter, signal });
    return;
  }
  await engine.createDatabase(m.database, creationProperties(memberProperties(m).properties));
  const cmd = await engine.restoreCommand({ target: m.database, format: m.format, jobs: 1, noOwner: false });
  await streamRestore(storage, file, compression, cmd, { classify, warn, decrypt, meter, signal });
}

/** Compression (of the decrypted bytes) and, for an encrypted member, the decrypting stage. */
async function readerFor(
  storage: Storage,
  key: string,
  unlockers: readonly KeyUnlocker[] | undefined,
): Promise<{ compression: CompressionAlgorithm; decrypt?: () => Transform }> {
  const raw = await head(storage, key);
  if (!isEncrypted(raw)) return { compression: detectCompression(raw) };
  if (!unlockers?.length) {
    throw new EncryptionKeyError(`${key} is encrypted and no key was given`, {
      hint: 'Give --encryption-key-file, --passphrase-file or --identity-file.',
    });
  }
  const detected = await sniff(storage, key, async () => unlockers);
  return { compression: detected.compression, decrypt: () => createDecryptStream(unlockers) };
}

async function head(storage: Storage, key: string): Promise<Buffer> {
  const stream = await storage.get(key, { start: 0, end: 63 });
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** A globals file is users and grants; anything this large is not one. */
const MAX_GLOBALS = 256 * 1024 * 1024;

/** The whole (small) object, decrypted and decompressed in Node; at most 256 MiB. */
async function readSmall(
  storage: Storage,
  key: string,
  unlockers: readonly KeyUnlocker[] | undefined,
): Promise<string> {
  const { compression, decrypt } = await readerFor(storage, key, unlockers);
  const stages: Duplex[] = [];
  if (decrypt) stages.push(decrypt());
  if (compression === 'zstd') stages.push(createZstdFramesDecompress());
  if (compression === 'gzip') stages.push(zlib.createGunzip());
  const chunks: Buffer[] = [];
  let total = 0;
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      total += chunk.length;
      if (total > MAX_GLOBALS)
        return cb(new IntegrityError(`${key} is larger than ${MAX_GLOBALS} bytes: not a globals file`));
      chunks.push(chunk);
      cb();
    },
  });
  await pipeline([await storage.get(key), ...stages, sink]);
  return Buffer.concat(chunks).toString('utf8');
}
