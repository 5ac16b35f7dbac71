import { errnoCode, errorMessage } from '../../errors.js';
import { describeFailure, firstLine, type Classifier, type FailureKind } from '../failure.js';

/** How the GCS SDK's errors read (ApiError, GaxiosError, node-fetch), for the shared failure mapping (failure.ts). */

/** Fields of the SDK's ApiError, gaxios' GaxiosError and node-fetch's FetchError that we look at. */
function fields(err: unknown): { code?: unknown; status?: unknown; response?: { status?: unknown } } {
  return typeof err === 'object' && err !== null ? err : {};
}

/** The HTTP status of an SDK error (ApiError.code is numeric; GaxiosError has status). */
export function httpStatus(err: unknown): number | undefined {
  const f = fields(err);
  for (const v of [f.code, f.status, f.response?.status]) if (typeof v === 'number') return v;
  return undefined;
}

const UNREACHABLE =
  /\b(ECONNREFUSED|ECONNRESET|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|EPIPE)\b|socket hang up/;

export function isBucketMissing(err: unknown): boolean {
  return (
    httpStatus(err) === 404 && /bucket/i.test(errorMessage(err)) && !/no such object/i.test(errorMessage(err))
  );
}

function kindOf(
  err: unknown,
  action: string,
  text: string,
  code: string | undefined,
): FailureKind | undefined {
  const status = httpStatus(err);
  if (action === 'read' && status === 404 && !isBucketMissing(err)) return 'object-missing';
  if (isBucketMissing(err)) return 'bucket-missing';
  if (
    status === 401 ||
    status === 403 ||
    /default credentials|invalid_grant|unauthorized|permission|credentials/i.test(text)
  )
    return 'auth';
  if (UNREACHABLE.test(`${code ?? ''} ${text}`)) return 'unreachable';
  if (code === 'FILE_NO_UPLOAD' || code === 'FILE_NO_UPLOAD_DELETE') return 'corrupt';
  if (status === 413) return 'too-large';
  return undefined;
}

/** The classifier of one bucket; `endpointLabel` names the server (no secrets). */
export function gcsClassifier(bucket: string, endpointLabel: string): Classifier {
  return {
    diagnose(err, action) {
      const status = httpStatus(err);
      const code = errnoCode(err);
      let text = firstLine(err) || 'unknown error';
      // node-fetch names the URL, and an upload's URL holds its session id, which grants writing the
      // object: keep only the reason (the endpoint is in the hint).
      text = text
        .replace(/^request to \S+ failed, reason: /, '')
        .replace(/upload_id=[^&\s]+/g, 'upload_id=****');
      if (code && !text.includes(code)) text += ` (${code})`;
      if (status && !text.includes(String(status))) text += ` (HTTP ${status})`;
      return { text, kind: kindOf(err, action, text, code) };
    },
    hints: {
      'object-missing': 'Check the name; "dbbackup list backups --cloud <uri>" shows what is there.',
      'bucket-missing': `The bucket "${bucket}" does not exist: check the name, create it (gcloud storage buckets create gs://${bucket}), or add ?create_bucket=true to the URI.`,
      auth:
        'Check the credentials: ?credentials=<service-account.json>, GOOGLE_APPLICATION_CREDENTIALS, or "gcloud auth application-default login", ' +
        `and that the account may use the bucket "${bucket}" (e.g. roles/storage.objectAdmin).`,
      unreachable: `Could not reach the GCS endpoint ${endpointLabel}: check ?endpoint= / --cloud-endpoint / STORAGE_EMULATOR_HOST (with http://), the network, and that the server is running.`,
      corrupt:
        "The stored object's CRC32C differs from the data sent, so it was removed: run the backup again.",
      'too-large': 'The server refused the request size.',
    },
    missing: (where) => `Not found: ${where}`,
  };
}

/** One line of cause and a hint for an SDK or network error. */
export function describeGcsError(
  err: unknown,
  bucket: string,
  endpointLabel: string,
): { text: string; hint?: string } {
  return describeFailure(gcsClassifier(bucket, endpointLabel), err);
}

/**
 * How the SDK ends an upload whose connection broke: retries used up, or a refusal to resume
 * because the server holds fewer bytes than were streamed (they are not kept in memory).
 */
export function isBrokenUpload(err: unknown): boolean {
  return (
    (err instanceof RangeError && /offset is lower than the number of bytes written/.test(err.message)) ||
    /^Retry (total time )?limit exceeded/.test(errorMessage(err))
  );
}
