import { createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { StorageOptions } from '@google-cloud/storage';
import { JWT } from 'google-auth-library';
import { UsageError, errnoCode, errorMessage } from '../../errors.js';
import { maskUri, type CloudUri } from '../cloud-uri.js';
import type { CloudSettings } from '../cloud.js';

/** Resumable chunks must be multiples of 256 KiB (GCS rejects anything else but the last chunk). */
export const GCS_CHUNK_UNIT = 256 * 1024;
const STORAGE_CLASSES = ['STANDARD', 'NEARLINE', 'COLDLINE', 'ARCHIVE', 'MULTI_REGIONAL', 'REGIONAL'];
const PUBLIC_ENDPOINT = 'https://storage.googleapis.com';

/** Everything decided from the URI, flags and environment before any request (pure, unit-tested). */
export interface GcsTarget {
  /** An explicit endpoint (?endpoint= / --cloud-endpoint); undefined means Google or STORAGE_EMULATOR_HOST. */
  endpoint?: string;
  /** What messages call the server: the endpoint, the emulator host, or storage.googleapis.com. */
  endpointLabel: string;
  /** Service-account JSON from ?credentials= (GOOGLE_APPLICATION_CREDENTIALS is read by the SDK itself). */
  keyFilename?: string;
  projectId?: string;
  /** Opt-in chunked resumable upload (bytes, a multiple of 256 KiB); undefined = one streamed request. */
  chunkSize?: number;
  storageClass?: string;
  createBucket: boolean;
}

/** `8388608`, `256k`, `8M`, `8MiB` → bytes. */
function parseSize(text: string): number | undefined {
  const m = /^(\d+)\s*(k|kib|m|mib)?$/i.exec(text.trim());
  if (!m) return undefined;
  const unit = (m[2] ?? '').toLowerCase().startsWith('k') ? 1024 : m[2] ? 1024 * 1024 : 1;
  return Number(m[1]) * unit;
}

/**
 * `?chunk_size=` is not (yet) one of CloudParams, so it is read from the URI's query directly; the
 * display form keeps every non-secret parameter as written.
 */
function queryParam(uri: CloudUri, name: string): string | undefined {
  const q = uri.display.indexOf('?');
  return q < 0 ? undefined : (new URLSearchParams(uri.display.slice(q + 1)).get(name) ?? undefined);
}

export function gcsTarget(
  uri: CloudUri,
  settings: CloudSettings,
  env: NodeJS.ProcessEnv = process.env,
): GcsTarget {
  const endpoint = uri.params.endpoint ?? settings.endpoint;
  if (endpoint !== undefined && !/^https?:\/\/[^/]/i.test(endpoint)) {
    throw new UsageError(
      `Invalid GCS endpoint "${maskUri(endpoint)}"`,
      'Use a URL with its scheme, e.g. http://127.0.0.1:9199 for an emulator (URL-encode it inside ?endpoint=).',
    );
  }
  const emulator = env.STORAGE_EMULATOR_HOST || undefined;
  if (!endpoint && emulator && !/^https?:\/\//i.test(emulator)) {
    // Without a scheme the SDK speaks TLS to a plain-HTTP emulator: "wrong version number".
    throw new UsageError(
      `STORAGE_EMULATOR_HOST="${emulator}" has no scheme`,
      `Write it with http://, e.g. STORAGE_EMULATOR_HOST=http://${emulator}.`,
    );
  }
  const rawChunk = queryParam(uri, 'chunk_size');
  const chunkSize = rawChunk !== undefined ? parseSize(rawChunk) : settings.partSizeBytes;
  if (
    (rawChunk !== undefined && chunkSize === undefined) ||
    (chunkSize !== undefined && (!chunkSize || chunkSize % GCS_CHUNK_UNIT !== 0))
  ) {
    throw new UsageError(
      `Invalid GCS chunk size "${rawChunk ?? String(chunkSize)}"`,
      'Use a positive multiple of 256 KiB, e.g. ?chunk_size=8MiB or --cloud-part-size 8.',
    );
  }
  let storageClass = uri.params.storageClass?.toUpperCase().replace(/-/g, '_');
  if (storageClass !== undefined && !STORAGE_CLASSES.includes(storageClass)) {
    throw new UsageError(
      `Unknown GCS storage class "${uri.params.storageClass}"`,
      `Use one of: ${STORAGE_CLASSES.join(', ')}.`,
    );
  }
  if (storageClass === '') storageClass = undefined;
  return {
    endpoint: endpoint?.replace(/\/+$/, ''),
    endpointLabel: maskUri(endpoint ?? emulator ?? PUBLIC_ENDPOINT),
    keyFilename: uri.params.credentials,
    projectId: uri.params.project,
    chunkSize,
    storageClass,
    createBucket: uri.params.createBucket === true,
  };
}

const CREDENTIALS_HINT =
  'Give the path of a service-account JSON key in ?credentials=, or use GOOGLE_APPLICATION_CREDENTIALS.';

/**
 * The ?credentials= file is checked before any request. The SDK reads it only when it first needs
 * a token, then reports bad JSON or a damaged private key as a bare OpenSSL or network error with
 * no hint, and never against an emulator (which needs no token). Its content is never quoted: it
 * holds a private key.
 */
export async function checkCredentialsFile(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = errnoCode(err);
    throw new UsageError(
      code === 'ENOENT'
        ? `GCS credentials file not found: ${file}`
        : `Cannot read the GCS credentials file ${file}: ${code ?? errorMessage(err)}`,
      CREDENTIALS_HINT,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new UsageError(`The GCS credentials file ${file} is not valid JSON`, CREDENTIALS_HINT);
  }
  const fields = typeof json === 'object' && json !== null ? (json as Record<string, unknown>) : {};
  if (typeof fields.type !== 'string')
    throw new UsageError(
      `The GCS credentials file ${file} is not a credentials file (it has no "type" field)`,
      CREDENTIALS_HINT,
    );
  if (fields.type !== 'service_account') return fields; // authorized_user, external_account…: the SDK's business
  if (typeof fields.client_email !== 'string' || typeof fields.private_key !== 'string')
    throw new UsageError(
      `The service-account key ${file} has no "client_email" or "private_key"`,
      CREDENTIALS_HINT,
    );
  try {
    createPrivateKey(fields.private_key);
  } catch {
    throw new UsageError(
      `The private key in the service-account key ${file} cannot be read (damaged or edited file)`,
      `Download a new key for ${fields.client_email}; ${CREDENTIALS_HINT.charAt(0).toLowerCase()}${CREDENTIALS_HINT.slice(1)}`,
    );
  }
  return fields;
}

/**
 * A service account's checked key as an auth client: handing the SDK the file name (or its JSON)
 * makes it print a deprecation warning on every command. Other kinds go to the SDK as a file.
 */
export function authFor(
  file: string,
  key: Record<string, unknown>,
): Pick<StorageOptions, 'authClient' | 'keyFilename'> {
  if (
    key.type === 'service_account' &&
    typeof key.client_email === 'string' &&
    typeof key.private_key === 'string'
  ) {
    return {
      authClient: new JWT({
        email: key.client_email,
        key: key.private_key,
        keyId: typeof key.private_key_id === 'string' ? key.private_key_id : undefined,
        scopes: ['https://www.googleapis.com/auth/devstorage.full_control'],
      }),
    };
  }
  return { keyFilename: file };
}
