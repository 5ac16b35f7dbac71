import { UsageError } from '../errors.js';

export type Provider = 's3' | 'azure' | 'gcs';

/** Query parameters a cloud URI may carry (and their command-line / environment equivalents). */
export interface CloudParams {
  endpoint?: string;
  region?: string;
  pathStyle?: boolean;
  /** Azure storage account name and shared key, or a SAS token. */
  account?: string;
  key?: string;
  sas?: string;
  /** GCS service-account JSON file, and project id. */
  credentials?: string;
  project?: string;
  createBucket?: boolean;
  storageClass?: string;
  accessKey?: string;
  secretKey?: string;
}

export interface CloudUri {
  /** The scheme as written: s3, minio, b2, azure, azblob, gs, gcs. */
  scheme: string;
  provider: Provider;
  /** Bucket (S3, GCS) or container (Azure). */
  bucket: string;
  /** Everything after the bucket, without a leading '/'; may be '' (the bucket root). */
  path: string;
  params: CloudParams;
  /** The URI with every secret masked, for messages. */
  display: string;
}

const SCHEMES: Record<string, Provider> = {
  s3: 's3',
  minio: 's3',
  b2: 's3',
  azure: 'azure',
  azblob: 'azure',
  gs: 'gcs',
  gcs: 'gcs',
};

export const SUPPORTED_SCHEMES = Object.keys(SCHEMES);

const SECRET_PARAMS = ['key', 'sas', 'secret_key', 'secretKey', 'sig'];

export function isCloudUri(arg: string): boolean {
  const m = /^([a-z][a-z0-9+.-]*):\/\//i.exec(arg);
  return Boolean(m?.[1] && SCHEMES[m[1].toLowerCase()]);
}

/** Replace secret query values (key, sas, sig…) and userinfo passwords with `****`. */
export function maskUri(uri: string): string {
  return uri
    .replace(/(:\/\/[^/:@]*:)[^@/]*@/, '$1****@')
    .replace(new RegExp(`([?&](?:${SECRET_PARAMS.join('|')})=)[^&]*`, 'gi'), '$1****');
}

function bool(value: string | null): boolean | undefined {
  if (value === null) return undefined;
  return ['1', 'true', 'yes', 'on', ''].includes(value.toLowerCase());
}

/** Every option a URI may carry after '?'; anything else is a usage error, never silently ignored. */
const KNOWN_PARAMS = [
  'endpoint',
  'region',
  'path_style',
  'pathStyle',
  'account',
  'key',
  'sas',
  'credentials',
  'project',
  'create_bucket',
  'create',
  'storage_class',
  'tier',
  'chunk_size',
];

/**
 * Parse `scheme://bucket/path?params`. AWS virtual-host forms (`bucket.s3.<region>.amazonaws.com`)
 * give the bucket and region. Unknown schemes and empty buckets are usage errors.
 *
 * The path is taken literally, as `aws s3` and `gsutil` take theirs: no percent-decoding, so the
 * location dbbackup prints (`…/shop%23x_20261126_050000.dump.zst`, the object's real name) is
 * exactly what it accepts. The first '?' starts the options, so a prefix cannot contain '?';
 * an unknown option is refused, which catches such a prefix instead of writing somewhere else.
 */
export function parseCloudUri(uri: string): CloudUri {
  const display = maskUri(uri);
  const m = /^([a-z][a-z0-9+.-]*):\/\/([^/?]*)([^?]*)(?:\?(.*))?$/is.exec(uri);
  if (!m)
    throw new UsageError(
      `Not a valid storage URI: ${display}`,
      'Use scheme://bucket/path, e.g. s3://my-bucket/backups/.',
    );
  const scheme = (m[1] ?? '').toLowerCase();
  const provider = SCHEMES[scheme];
  if (!provider) {
    throw new UsageError(
      `Unknown storage scheme "${scheme}://" in ${display}`,
      `Supported: ${SUPPORTED_SCHEMES.map((s) => `${s}://`).join(', ')}, or a local directory.`,
    );
  }
  let bucket = m[2] ?? '';
  const path = (m[3] ?? '').replace(/^\/+/, '');
  const q = new URLSearchParams(m[4] ?? '');
  for (const name of q.keys()) {
    if (!KNOWN_PARAMS.includes(name))
      throw new UsageError(
        `Unknown option "${name}" in ${display}`,
        `A '?' starts the URI's options (${KNOWN_PARAMS.filter((p) => !/[A-Z]/.test(p)).join(', ')}), so it cannot be part of a prefix or name.`,
      );
  }
  const params: CloudParams = {
    endpoint: q.get('endpoint') ?? undefined,
    region: q.get('region') ?? undefined,
    pathStyle: bool(q.get('path_style') ?? q.get('pathStyle')),
    account: q.get('account') ?? undefined,
    key: q.get('key') ?? undefined,
    sas: q.get('sas') ?? undefined,
    credentials: q.get('credentials') ?? undefined,
    project: q.get('project') ?? undefined,
    createBucket: bool(q.get('create_bucket') ?? q.get('create')),
    storageClass: q.get('storage_class') ?? q.get('tier') ?? undefined,
  };
  if (provider === 's3') {
    const aws =
      /^(.+?)\.s3[.-]([a-z0-9-]+)\.amazonaws\.com$/i.exec(bucket) ??
      /^(.+?)\.s3\.amazonaws\.com$/i.exec(bucket);
    if (aws?.[1]) {
      bucket = aws[1];
      const region = aws[2];
      params.region ??= region && region !== 'dualstack' ? region : 'us-east-1';
    }
  }
  if (!bucket) throw new UsageError(`No bucket in ${display}`, `Use ${scheme}://<bucket>/<path>.`);
  for (const k of Object.keys(params) as Array<keyof CloudParams>)
    if (params[k] === undefined) delete params[k];
  return { scheme, provider, bucket, path, params, display };
}

/** Split a URI path into the store's prefix (a "directory", '' or ending in '/') and an object name. */
export function splitObjectPath(path: string): { prefix: string; name: string } {
  const slash = path.lastIndexOf('/');
  return slash < 0
    ? { prefix: '', name: path }
    : { prefix: path.slice(0, slash + 1), name: path.slice(slash + 1) };
}

/** A URI path used as a directory: '' or ending in '/'. */
export function asPrefix(path: string): string {
  return path === '' || path.endsWith('/') ? path : `${path}/`;
}
