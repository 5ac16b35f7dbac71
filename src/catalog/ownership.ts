import { IntegrityError } from '../errors.js';
import { TEMP_MARKER } from '../storage/local/local.js';
import { readAll, type Storage } from '../storage/storage.js';
import { MANIFEST_NAME, readManifest, type ClusterManifest } from './manifest.js';
import { metadataKey, readMetadata } from './metadata.js';
import { SHA256_SUFFIX } from './naming.js';
import { CLUSTER_DRILLS_NAME, drillHistoryKey, parseDrillHistory } from './drill-history.js';
import { isReferenceName } from '../reference/naming.js';

/** The reference tool's names live in src/reference/naming.ts. */
export { isReferenceName };

/*
 * What dbbackup can prove it wrote, from names and content alone. Cleanup removes nothing else:
 * a user's `important.sql`, their own pg_dump file, a `package` beside a `package.meta.json`, a
 * `myapp/` folder with a `manifest.json` look like backups to a listing, but no rule may touch them.
 * These patterns follow the names src/catalog/naming.ts, src/backup/*.ts and src/storage/local.ts
 * give; a name they do not recognise is left alone (the safe way to be wrong).
 */

/** One byte of a database name as `safeName` writes it: a safe character or `%XX`. */
const SAFE = '(?:[A-Za-z0-9_.-]|%[0-9A-F]{2})';
/** `.dump`/`.sql`, then `.gz`/`.zst`, then `.enc`: every extension `extensionFor` gives. */
const EXTENSION = '\\.(?:dump|sql)(?:\\.gz|\\.zst)?(?:\\.enc)?';
/** `_YYYYMMDD_HHMMSS`, then `-N` when that second was taken. */
const STAMP = '_\\d{8}_\\d{6}(?:-\\d+)?';

const BACKUP_NAME = new RegExp(`^${SAFE}+${STAMP}${EXTENSION}$`);
const CLUSTER_NAME = new RegExp(`^cluster${STAMP}$`);
/** A member, or a rekeyed member (`shop~rekey20261127_080000.dump.zst.enc`, src/crypto/rekey-backup.ts). */
const MEMBER_NAME = new RegExp(`^${SAFE}+(?:~rekey${STAMP.slice(1)})?${EXTENSION}$`);
/** `LocalStorage.put`'s temporary name: the marker, 12 hex digits, '-', the final name. */
const TEMP_NAME = new RegExp(`^${TEMP_MARKER.replaceAll('.', '\\.')}[0-9a-f]{12}-.+$`);

const base = (key: string): string => key.slice(key.lastIndexOf('/') + 1);

/** A single backup's data file as dbbackup names it: `<db>_<YYYYMMDD_HHMMSS><ext>` (samples too). */
export function isOwnBackupName(key: string): boolean {
  return BACKUP_NAME.test(base(key)) && !isReferenceName(key);
}

/** A cluster backup's directory as dbbackup names it: `cluster_<YYYYMMDD_HHMMSS>`. */
export function isOwnClusterName(name: string): boolean {
  return CLUSTER_NAME.test(name);
}

/** A file inside a cluster backup as dbbackup names it: `globals.sql.zst`, `<db>.dump.zst`… */
export function isOwnMemberName(key: string): boolean {
  return MEMBER_NAME.test(base(key));
}

/** A temporary file of an interrupted write to a directory. */
export function isOwnTempName(key: string): boolean {
  return TEMP_NAME.test(base(key));
}

/** A `.sha256` sidecar as dbbackup writes it for `owner`: `<64 hex>  <owner's file name>\n`. */
export function isOwnChecksumText(text: string, owner: string): boolean {
  return text === `${text.slice(0, 64)}  ${base(owner)}\n` && /^[0-9a-f]{64}$/.test(text.slice(0, 64));
}

/** What dbbackup wrote of one backup entry (`key`, or `cluster_x/`), and what it must leave alone. */
export type Owned =
  | {
      ours: true;
      /** Files to remove, metadata (or manifest) first so that a stopped removal never leaves "valid". */
      files: string[];
      /** Files beside or inside the backup that dbbackup did not write: never removed. */
      foreign: string[];
    }
  | { ours: false; reason: string };

/**
 * The files of a backup that dbbackup provably wrote: its metadata if it parses as dbbackup's (or,
 * without metadata, a data file named as dbbackup names backups), the data, a `.sha256` in
 * dbbackup's own format; for a cluster backup its manifest if it parses as dbbackup's (or, without
 * one, a `cluster_<ts>/` holding only files named as dbbackup names members) and those members.
 */
export async function ownedFiles(storage: Storage, key: string): Promise<Owned> {
  if (key.endsWith('/')) return ownedCluster(storage, key);
  if (isOwnTempName(key)) return { ours: true, files: [key], foreign: [] };
  return ownedSingle(storage, key);
}

async function ownedSingle(storage: Storage, key: string): Promise<Owned> {
  const metaKey = metadataKey(key);
  const [meta, data, sum] = await Promise.all([
    storage.stat(metaKey),
    storage.stat(key),
    storage.stat(key + SHA256_SUFFIX),
  ]);
  if (meta) {
    if (!(await parses(() => readMetadata(storage, key))))
      return { ours: false, reason: `${base(metaKey)} is not dbbackup's metadata` };
  } else if (!isOwnBackupName(key)) {
    return { ours: false, reason: 'no dbbackup metadata, and not named as dbbackup names its backups' };
  }
  const files = [...(meta ? [metaKey] : []), ...(data ? [key] : [])];
  const foreign: string[] = [];
  if (sum) {
    const text = (await readAll(storage, sum.key, 4096).catch(() => Buffer.alloc(0))).toString('utf8');
    // A checksum file that disagrees is still ours when the metadata is: it was written beside it.
    if (meta || isOwnChecksumText(text, key)) files.push(sum.key);
    else foreign.push(sum.key);
  }
  if (!files.length) return { ours: false, reason: `${base(sum?.key ?? key)} is not in dbbackup's format` };
  // Its drill history (issue 17) goes with it, when it is dbbackup's.
  const drills = await storage.stat(drillHistoryKey(key));
  if (drills) {
    const text = (
      await readAll(storage, drills.key, 4 * 1024 * 1024).catch(() => Buffer.alloc(0))
    ).toString();
    if (parseDrillHistory(text)) files.push(drills.key);
    else foreign.push(drills.key);
  }
  return { ours: true, files, foreign };
}

async function ownedCluster(storage: Storage, prefix: string): Promise<Owned> {
  const name = prefix.slice(0, -1);
  const inside: string[] = [];
  for await (const o of storage.list(prefix)) inside.push(o.key);
  const manifestKey = `${prefix}${MANIFEST_NAME}`;
  let listed = new Set<string>();
  if (inside.includes(manifestKey)) {
    let manifest: ClusterManifest | undefined;
    if (!(await parses(async () => (manifest = await readManifest(storage, name)))) || !manifest)
      return { ours: false, reason: `its ${MANIFEST_NAME} is not a valid dbbackup cluster manifest` };
    listed = new Set([manifest.globals.file, ...manifest.databases.flatMap((m) => (m.file ? [m.file] : []))]);
  } else if (!isOwnClusterName(name)) {
    return { ours: false, reason: `no dbbackup manifest, and not named as dbbackup names cluster backups` };
  }
  const direct = (k: string): boolean => !k.slice(prefix.length).includes('/');
  const mine = (k: string): boolean =>
    listed.has(k) ||
    (direct(k) && (isOwnMemberName(k) || isOwnTempName(k) || k === `${prefix}${CLUSTER_DRILLS_NAME}`));
  const foreign = inside.filter((k) => k !== manifestKey && !mine(k));
  // Without a manifest, one file dbbackup would not have written there makes the whole folder not provably ours.
  if (!listed.size && foreign.length)
    return { ours: false, reason: `no dbbackup manifest, and ${foreign[0]} is not a file dbbackup writes` };
  const files = [
    ...(inside.includes(manifestKey) ? [manifestKey] : []),
    ...inside.filter((k) => k !== manifestKey && mine(k)),
  ];
  return { ours: true, files, foreign };
}

/** Whether a metadata read succeeds: an IntegrityError means "not dbbackup's"; storage errors are thrown. */
async function parses(read: () => Promise<unknown>): Promise<boolean> {
  try {
    await read();
    return true;
  } catch (err) {
    if (err instanceof IntegrityError) return false;
    throw err;
  }
}
