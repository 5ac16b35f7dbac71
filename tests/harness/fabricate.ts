import type { ObjectStore } from './object-store.js';

/**
 * Older backups for retention tests, made from real ones: the stored bytes are copied unchanged
 * (so size and SHA-256 stay valid) under the name a backup taken at another time would have, and
 * only the timestamps, the name (and optionally the server port) are rewritten in the metadata or
 * manifest. Works on any ObjectStore: a directory, a bucket, a container.
 */

export const DAY = 86_400_000;

/** The fields of a backup's .meta.json that retention tests read or rewrite. */
export interface BackupMeta {
  startedAt: string;
  finishedAt: string;
  file: string;
  sha256: string;
  sizeBytes: number;
  database: string;
  connection: { host: string; port: number; user: string };
  encryption?: unknown;
  [field: string]: unknown;
}

/** The fields of a cluster manifest.json that retention tests read or rewrite. */
export interface ManifestMeta {
  name: string;
  startedAt: string;
  finishedAt: string;
  totalBytes: number;
  connection: { host: string; port: number; user: string };
  globals: { file: string; [field: string]: unknown };
  databases: Array<{ database: string; file: string | null; [field: string]: unknown }>;
  [field: string]: unknown;
}

/** `YYYYMMDD_HHMMSS` in UTC, as in backup and cluster names. */
export function timestampTag(d: Date): string {
  const s = d.toISOString();
  return `${s.slice(0, 4)}${s.slice(5, 7)}${s.slice(8, 10)}_${s.slice(11, 13)}${s.slice(14, 16)}${s.slice(17, 19)}`;
}

/** The three objects of a single backup: data, metadata, checksum. */
export function filesOf(...keys: string[]): string[] {
  return keys.flatMap((k) => [k, `${k}.meta.json`, `${k}.sha256`]);
}

export async function readJson<T>(store: ObjectStore, key: string): Promise<T> {
  return JSON.parse((await store.read(key)).toString('utf8')) as T;
}

/**
 * Copies the single backup `from` (a key under `prefix`) to the name it would have at `when`
 * (`<db>_<YYYYMMDD_HHMMSS><ext>`), with rewritten timestamps, file name and, if given, port.
 * Returns the new key (relative to `prefix`).
 */
export async function fabricateBackup(
  store: ObjectStore,
  prefix: string,
  from: string,
  when: Date,
  opts: { port?: number } = {},
): Promise<string> {
  const m = /^(.*)_\d{8}_\d{6}(?:-\d+)?(\.[a-z.]+)$/.exec(from);
  if (!m) throw new Error(`not a backup name: ${from}`);
  const key = `${m[1]}_${timestampTag(when)}${m[2]}`;
  const meta = await readJson<BackupMeta>(store, `${prefix}${from}.meta.json`);
  await store.write(`${prefix}${key}`, await store.read(`${prefix}${from}`));
  await store.write(`${prefix}${key}.sha256`, `${meta.sha256}  ${key}\n`);
  const rewritten: BackupMeta = {
    ...meta,
    startedAt: when.toISOString(),
    finishedAt: new Date(when.getTime() + 1000).toISOString(),
    file: key,
    ...(opts.port === undefined ? {} : { connection: { ...meta.connection, port: opts.port } }),
  };
  // Metadata last, as the CLI writes it.
  await store.write(`${prefix}${key}.meta.json`, `${JSON.stringify(rewritten, null, 2)}\n`);
  return key;
}

/**
 * Copies the cluster backup `from` (`cluster_…`, under `prefix`) to `cluster_<when>`: every member
 * byte for byte, then a manifest with the new name, member paths, timestamps and (if given) port.
 * Returns the new cluster name (without the trailing '/').
 */
export async function fabricateCluster(
  store: ObjectStore,
  prefix: string,
  from: string,
  when: Date,
  opts: { port?: number } = {},
): Promise<string> {
  const name = `cluster_${timestampTag(when)}`;
  const manifest = await readJson<ManifestMeta>(store, `${prefix}${from}/manifest.json`);
  const moved = (file: string) =>
    file.startsWith(`${from}/`) ? `${name}/${file.slice(from.length + 1)}` : file;
  for (const key of await store.keys(`${prefix}${from}/`)) {
    const rel = key.slice(`${prefix}${from}/`.length);
    if (rel !== 'manifest.json') await store.write(`${prefix}${name}/${rel}`, await store.read(key));
  }
  const rewritten: ManifestMeta = {
    ...manifest,
    name,
    startedAt: when.toISOString(),
    finishedAt: new Date(when.getTime() + 1000).toISOString(),
    globals: { ...manifest.globals, file: moved(manifest.globals.file) },
    databases: manifest.databases.map((d) => ({ ...d, file: d.file === null ? null : moved(d.file) })),
    ...(opts.port === undefined ? {} : { connection: { ...manifest.connection, port: opts.port } }),
  };
  await store.write(`${prefix}${name}/manifest.json`, `${JSON.stringify(rewritten, null, 2)}\n`);
  return name;
}
