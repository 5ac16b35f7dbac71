import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import path from 'node:path';
import { Command } from 'commander';
import { listBackups } from '../../verify/listing.js';
import {
  copyBackup,
  copyCluster,
  deleteBackup,
  type ClusterTransferResult,
  type TransferResult,
} from '../../catalog/transfer.js';
import { manifestKey } from '../../catalog/manifest.js';
import type { CloudSettings } from '../../storage/cloud.js';
import { isSidecar } from '../../catalog/naming.js';
import { DbBackupError, UsageError, errorMessage } from '../../errors.js';
import { formatBytes } from '../../units.js';
import { isCloudUri, maskUri, parseCloudUri } from '../../storage/cloud-uri.js';
import type { Storage } from '../../storage/storage.js';
import { openLocation, openStore, type Location } from '../../storage/uri.js';
import { verifyAny } from '../../verify/verify.js';
import { NO_KEY_HINT } from '../../verify/deep.js';
import { describeEncryption, unlockersFromFlags, type EncryptionFlags } from '../../crypto/index.js';
import { copyDecrypted } from '../../crypto/decrypt-copy.js';
import { describeProtections, readStoredHeader } from '../../crypto/stored-header.js';
import { cloudSettings, globals, out } from '../context.js';
import { stopTransfersOnSignal } from '../signals.js';
import { incompleteUploads } from '../../catalog/uploads.js';
import { printIncompleteUploads } from '../incomplete-uploads.js';
import { encryptionFlags, withDecryptOptions } from '../encryption-options.js';
import { printBackupList } from '../backup-list.js';
import { checkKeysFirst, expandBackups, keyOptionGiven, resultLine, verifyMode } from '../verify-args.js';

interface DownloadOptions extends EncryptionFlags {
  decrypt?: boolean;
  overwrite?: boolean;
}

interface CloudVerifyOptions extends EncryptionFlags {
  quick?: boolean;
  deep?: boolean;
}

function requireCloud(uri: string): void {
  if (!isCloudUri(uri))
    throw new UsageError(
      `${uri} is not a cloud URI`,
      'Use s3://, minio://, b2://, azure://, azblob://, gs:// or gcs://.',
    );
}

export function cloudCommand(): Command {
  const cloud = new Command('cloud').description('Move, list, check and delete backups in cloud storage');
  // Every cloud subcommand: the first Ctrl-C / SIGTERM cuts its storage connections and ends it.
  cloud.hook('preAction', () => stopTransfersOnSignal());

  cloud
    .command('upload')
    .description(
      'Upload local backups (with their .sha256 and .meta.json), or cluster backups (their directory), to a cloud prefix, verified on the way',
    )
    .argument('<files...>', 'backup files or cluster directories, then the destination URI (last argument)')
    .option('--overwrite', 'replace a different backup of the same name at the destination')
    .action(async (args: string[], opts: { overwrite?: boolean }, cmd: Command) => {
      const dest = args.pop();
      if (!dest || !args.length)
        throw new UsageError(
          'Give one or more files and a destination URI',
          'dbbackup cloud upload shop_….dump.zst s3://bucket/backups/',
        );
      requireCloud(dest);
      const store = await openStore(dest, cloudSettings(globals(cmd)));
      for (const file of args.filter((f) => !isSidecar(f))) {
        const { storage, key } = await openSource(file, {});
        out.line(transferLine('Uploaded', file, store, await transfer(storage, key, store, opts)));
      }
    });

  withDecryptOptions(cloud.command('download'))
    .description(
      'Download a backup (and its sidecars) into a local directory, verified against its metadata; stored bytes as they are, or decrypted with --decrypt',
    )
    .argument('<uri>', 'cloud URI of the backup (or of a cluster backup: its prefix)')
    .argument('<dir>', 'local directory')
    .option('--overwrite', 'replace a different backup of the same name in the directory')
    .option(
      '--decrypt',
      'write the decrypted (still compressed) dump, with its own .sha256 and metadata, instead of the encrypted bytes (needs the key)',
    )
    .action(async (uri: string, dir: string, opts: DownloadOptions, cmd: Command) => {
      requireCloud(uri);
      const settings = cloudSettings(globals(cmd));
      const flags = encryptionFlags(opts);
      if (!opts.decrypt && keyOptionGiven(flags))
        throw new UsageError(
          'A key is only used with --decrypt',
          'Add --decrypt to write the decrypted dump; without it the backup is downloaded as stored (encrypted).',
        );
      const { storage, key } = await openSource(uri, settings);
      const dest = await openStore(dir);
      if (key.endsWith('/')) {
        if (opts.decrypt)
          throw new UsageError(
            '--decrypt works on one backup, not a cluster',
            'Download the cluster as stored, or give one member.',
          );
        out.line(transferLine('Downloaded', maskUri(uri), dest, await transfer(storage, key, dest, opts)));
        return;
      }
      if (opts.decrypt) {
        const unlockers = await unlockersFromFlags(flags);
        const d = await copyDecrypted(storage, key, dest, unlockers, Boolean(opts.overwrite));
        if (d) {
          out.line(
            `Downloaded and decrypted ${maskUri(uri)} → ${path.join(path.resolve(dir), d.key)} (${formatBytes(d.bytes)}, sha256 ${d.sha256}, ${d.chunks} chunks authenticated${d.metadata ? ', source checksum verified' : ', no metadata'}); this copy is NOT encrypted`,
          );
          return;
        }
        out.note(`${key} is not encrypted: downloading it as stored.`);
      }
      const r = await copyBackup(storage, key, dest, key, { overwrite: opts.overwrite });
      if (r.skipped) {
        out.line(transferLine('Downloaded', maskUri(uri), dest, r));
        return;
      }
      const header = r.metadata?.encryption
        ? undefined
        : await readStoredHeader(dest, r.key).catch(() => undefined);
      const encryption = r.metadata?.encryption ?? (header ? describeEncryption(header) : null);
      out.line(
        `Downloaded ${maskUri(uri)} → ${path.join(path.resolve(dir), r.key)} (${formatBytes(r.bytes)}, sha256 ${r.sha256}${r.metadata ? ', verified' : ', no metadata'}${encryption ? `; encrypted for ${describeProtections(encryption)}` : ''})`,
      );
    });

  cloud
    .command('copy')
    .description(
      'Copy a backup, or a cluster backup as one unit, between locations (provider to provider), streamed, checksum preserved',
    )
    .argument('<from>', 'source backup URI or path (a cluster backup: its prefix or directory)')
    .argument('<to>', 'destination prefix URI or directory')
    .option('--overwrite', 'replace a different backup of the same name at the destination')
    .action(async (from: string, to: string, opts: { overwrite?: boolean }, cmd: Command) => {
      const settings = cloudSettings(globals(cmd));
      const { storage, key } = await openSource(from, settings);
      const dest = await openStore(to, settings);
      out.line(transferLine('Copied', maskUri(from), dest, await transfer(storage, key, dest, opts)));
    });

  cloud
    .command('list')
    .description('List the backups under a cloud prefix with their state (--all: every object)')
    .argument('<uri>', 'cloud prefix URI')
    .option('--all', 'list every object, not just backups')
    .option('--json', 'print as JSON')
    .action(async (uri: string, opts: { all?: boolean; json?: boolean }, cmd: Command) => {
      requireCloud(uri);
      const store = await openStore(uri, cloudSettings(globals(cmd)));
      if (!opts.all) {
        printBackupList(store.location, await listBackups(store), Boolean(opts.json));
        return;
      }
      const objects = [];
      for await (const o of store.list('')) objects.push(o);
      objects.sort((a, b) => a.key.localeCompare(b.key));
      // Unfinished uploads hold bytes that no object listing shows (S3 parts, Azure blocks).
      if (opts.json)
        out.json({ location: store.location, objects, incompleteUploads: await incompleteUploads(store) });
      else {
        for (const o of objects)
          out.line(`${o.modified.toISOString()}  ${formatBytes(o.size).padStart(10)}  ${o.key}`);
        await printIncompleteUploads(store, out.line);
      }
    });

  withDecryptOptions(cloud.command('verify'))
    .description(
      'Re-hash stored backups against their metadata (a backup URI, or a prefix for all of them); --deep also decrypts and checks each dump',
    )
    .argument('<uri>', 'cloud URI of a backup or a prefix ending in /')
    .option('--quick', 'compare sizes only')
    .option('--deep', 'also decrypt (authenticating every chunk), decompress and check each dump is complete')
    .action(async (uri: string, opts: CloudVerifyOptions, cmd: Command) => {
      requireCloud(uri);
      const mode = verifyMode(opts);
      const settings = cloudSettings(globals(cmd));
      // The same resolution as verify-backup (a backup, a prefix — with or without a query after
      // its '/' — a cluster, a glob), so the two commands cannot disagree about what a URI names.
      const targets = await expandBackups(uri, settings);
      if (mode.deep) await checkKeysFirst(targets, mode.deep.unlock, '--deep', NO_KEY_HINT);
      let bad = 0;
      for (const { storage, key } of targets) {
        const r = await verifyAny(storage, key, mode);
        if (r.state !== 'valid') bad++;
        out.line(resultLine(r));
      }
      if (bad)
        throw new DbBackupError(`${bad} of ${targets.length} backups failed verification`, {
          hint: 'Do not rely on the failed backups.',
        });
    });

  cloud
    .command('delete')
    .description('Delete a backup and its sidecars from the cloud (metadata first); needs --confirm')
    .argument('<uri>', 'cloud URI of the backup')
    .option('--confirm', 'really delete (without it, only says what would be deleted)')
    .action(async (uri: string, opts: { confirm?: boolean }, cmd: Command) => {
      requireCloud(uri);
      const { storage, key } = await openLocation(uri, cloudSettings(globals(cmd)));
      const found = await storage.stat(key);
      const meta = await storage.stat(`${key}.meta.json`);
      if (!found && !meta)
        throw new DbBackupError(`Nothing to delete: ${uri} does not exist`, {
          hint: 'Check the URI with dbbackup cloud list.',
        });
      if (!opts.confirm) {
        out.line(
          `Would delete ${uri} (${found ? formatBytes(found.size) : 'data missing'}) and its .meta.json and .sha256.`,
        );
        out.line('Dry run: nothing was deleted. Add --confirm to delete.');
        return;
      }
      await deleteBackup(storage, key);
      out.line(`Deleted ${maskUri(uri)} and its sidecars.`);
    });

  cloud
    .command('doctor')
    .description('Self-test a cloud location: access, multipart upload, ranged read, delete')
    .argument('<uri>', 'cloud prefix URI')
    .action(async (uri: string, _o: unknown, cmd: Command) => {
      requireCloud(uri);
      const failures = await doctor(uri, await openStore(uri, cloudSettings(globals(cmd))));
      if (failures)
        throw new DbBackupError(`${failures} check${failures > 1 ? 's' : ''} failed for ${uri}`, {
          hint: 'Fix the first failing step; the messages above say why.',
        });
      out.line('All checks passed.');
    });
  return cloud;
}

/**
 * A backup argument → its store and key, where a cluster backup (a directory or prefix holding a
 * manifest.json, with or without the trailing '/') is the key `cluster_x/`.
 */
async function openSource(arg: string, settings: CloudSettings): Promise<Location> {
  const q = isCloudUri(arg) ? arg.indexOf('?') : -1;
  const pathPart = q >= 0 ? arg.slice(0, q) : arg;
  const query = q >= 0 ? arg.slice(q) : '';
  const trimmed = pathPart.replace(/\/manifest\.json$/, '').replace(/\/+$/, '');
  const location = await openLocation(trimmed + query, settings);
  const cluster =
    !(await location.storage.stat(location.key)) &&
    Boolean(await location.storage.stat(manifestKey(location.key)));
  if (cluster) return { ...location, key: `${location.key}/` };
  if (trimmed !== pathPart)
    throw new UsageError(
      `${maskUri(arg)} names a directory, not a backup or a cluster backup`,
      'Give one backup (…/shop_20261126_050000.dump.zst) or a cluster backup (…/cluster_20261126_050000/).',
    );
  return location;
}

type AnyTransfer = TransferResult | ClusterTransferResult;

/** One backup or a whole cluster, never replacing a different one unless --overwrite. */
function transfer(
  from: Storage,
  key: string,
  to: Storage,
  opts: { overwrite?: boolean },
): Promise<AnyTransfer> {
  return key.endsWith('/')
    ? copyCluster(from, key, to, { overwrite: opts.overwrite })
    : copyBackup(from, key, to, key, { overwrite: opts.overwrite });
}

function transferLine(verb: string, source: string, to: Storage, r: AnyTransfer): string {
  const where = `${to.location.replace(/\/$/, '')}/${'name' in r ? `${r.name}/` : r.key}`;
  if (r.skipped)
    return `Skipped ${source}: ${where} already holds this backup (same size and SHA-256 in its ${'name' in r ? 'manifest' : 'metadata'}); nothing was written`;
  if ('name' in r)
    return `${verb} cluster ${source} → ${where} (${r.files} files, ${formatBytes(r.bytes)}, each checked against the manifest; manifest written last)`;
  return `${verb} ${source} → ${where} (${formatBytes(r.bytes)}, sha256 ${r.sha256}${r.metadata ? ', verified' : ', no metadata'})`;
}

async function doctor(uri: string, store: Storage): Promise<number> {
  let failures = 0;
  const step = async (name: string, fn: () => Promise<string>): Promise<boolean> => {
    try {
      out.line(`ok    ${name}: ${await fn()}`);
      return true;
    } catch (err) {
      failures++;
      out.line(`FAIL  ${name}: ${errorMessage(err)}`);
      return false;
    }
  };
  const key = `.dbbackup-doctor-${randomBytes(4).toString('hex')}`;
  // 20 MiB of data: more than one upload part at the default part size, so multipart is exercised.
  const size = 20 * 1024 * 1024;
  const block = randomBytes(1024 * 1024);
  const list = (): Promise<boolean> =>
    step('list (credentials and bucket access)', async () => {
      let n = 0;
      for await (const _o of store.list('')) if (++n >= 1000) break;
      return `${n}${n >= 1000 ? '+' : ''} objects under ${maskUri(uri)}`;
    });
  const upload = (): Promise<boolean> =>
    step('multipart upload', async () => {
      const info = await store.put(
        key,
        Readable.from(
          (function* () {
            for (let i = 0; i < 20; i++) yield block;
          })(),
        ),
      );
      if (info.size !== size) throw new Error(`stored ${info.size} bytes, expected ${size}`);
      return `${formatBytes(size)} stored`;
    });
  // With create_bucket a missing bucket is expected: the first write creates it, so it goes first.
  let wrote: boolean;
  if (parseCloudUri(uri).params.createBucket) {
    wrote = await upload();
    if (!wrote) return failures;
    await list();
  } else {
    if (!(await list())) return failures;
    wrote = await upload();
  }
  if (wrote) {
    await step('ranged read', async () => {
      const start = 5 * 1024 * 1024 + 17;
      const got = await new Promise<Buffer>((resolve, reject) => {
        store.get(key, { start, end: start + 99 }).then((s) => {
          const chunks: Buffer[] = [];
          s.on('data', (c: Buffer) => chunks.push(c))
            .on('end', () => resolve(Buffer.concat(chunks)))
            .on('error', reject);
        }, reject);
      });
      const expected = block.subarray(start % block.length, (start % block.length) + 100);
      if (!got.equals(expected)) throw new Error(`bytes ${start}–${start + 99} differ from what was written`);
      return '100 bytes from the middle match';
    });
    await step('delete', async () => {
      await store.delete(key);
      if (await store.stat(key)) throw new Error('the object is still there');
      return 'test object removed';
    });
  }
  return failures;
}
