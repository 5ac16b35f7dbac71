import { errnoCode } from '../../errors.js';
import { describeFailure, firstLine, type Classifier, type FailureKind } from '../failure.js';

/** How the S3 SDK's errors read: its names and statuses, for the shared failure mapping (failure.ts). */

interface SdkErrorShape {
  name?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
}

function shape(err: unknown): SdkErrorShape {
  return typeof err === 'object' && err !== null ? (err as SdkErrorShape) : {};
}

export function s3ErrorName(err: unknown): string {
  const s = shape(err);
  return s.Code ?? s.name ?? '';
}

export function httpStatus(err: unknown): number | undefined {
  return shape(err).$metadata?.httpStatusCode;
}

/** A missing object (HEAD gives a bare 404 "NotFound"); a missing bucket is not "not found". */
export function isNotFound(err: unknown): boolean {
  const name = s3ErrorName(err);
  if (name === 'NoSuchBucket') return false;
  return name === 'NoSuchKey' || name === 'NotFound' || httpStatus(err) === 404;
}

const TRANSIENT_NAMES = new Set([
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'RequestLimitExceeded',
  'TooManyRequestsException',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
  'InternalError',
  'ServiceUnavailable',
]);
const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENETUNREACH',
]);

export function isTransient(err: unknown): boolean {
  const status = httpStatus(err);
  return (
    (status !== undefined && status >= 500) ||
    status === 429 ||
    TRANSIENT_NAMES.has(s3ErrorName(err)) ||
    TRANSIENT_CODES.has(errnoCode(err) ?? '')
  );
}

const CREDENTIAL_ERRORS = new Set([
  'AccessDenied',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'CredentialsProviderError',
  'ExpiredToken',
  'InvalidToken',
  'AllAccessDisabled',
]);
/** Also resets: a server that dies mid-request first drops connections, then refuses them. */
const UNREACHABLE = new Set([
  'ECONNRESET',
  'EPIPE',
  'ENOTFOUND',
  'ECONNREFUSED',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
]);

/**
 * What the SDK calls an error it could not parse: a HEAD request's error has no body (a wrong
 * access key on the first HEAD of a backup gave "Unknown (HTTP 403)"), so the status must speak.
 */
const BARE = new Set(['', 'Unknown', 'UnknownError']);
const BARE_STATUS: Record<number, string> = {
  400: 'bad request',
  401: 'unauthorized',
  403: 'access denied',
  404: 'not found',
};

function kindOf(err: unknown, action: string): FailureKind | undefined {
  const name = s3ErrorName(err);
  const status = httpStatus(err);
  const code = errnoCode(err);
  if (action === 'read' && isNotFound(err)) return 'object-missing';
  if (name === 'NoSuchBucket') return 'bucket-missing';
  if (CREDENTIAL_ERRORS.has(name) || status === 403) return 'auth';
  if ((code && UNREACHABLE.has(code)) || name === 'TimeoutError') return 'unreachable';
  if (status === 413 || name === 'EntityTooLarge') return 'too-large';
  if (name === 'PermanentRedirect' || name === 'AuthorizationHeaderMalformed') return 'region';
  return undefined;
}

/** The classifier of one bucket; `endpoint` is already masked. */
export function s3Classifier(bucket: string, endpoint: string): Classifier {
  return {
    diagnose(err, action) {
      const name = s3ErrorName(err);
      const status = httpStatus(err);
      let text = firstLine(err);
      if (BARE.has(text)) text = BARE.has(name) ? (BARE_STATUS[status ?? 0] ?? 'unknown error') : name;
      else if (name && name !== 'Error' && !text.includes(name)) text = `${name}: ${text}`;
      if (status) text += ` (HTTP ${status})`;
      return { text, kind: kindOf(err, action) };
    },
    hints: {
      'object-missing': 'Check the name; "dbbackup list backups --cloud <uri>" shows what is there.',
      'bucket-missing': `The bucket "${bucket}" does not exist: create it or add ?create_bucket=true to the URI.`,
      auth: 'Check the credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or --cloud-access-key / --cloud-secret-key, and that they may use this bucket.',
      unreachable: `Could not reach the S3 endpoint ${endpoint}: check ?endpoint= / --cloud-endpoint, the network, and that the server is running.`,
      'too-large': 'The server refused the request size: use a smaller --cloud-part-size.',
      region: 'The bucket is in another region: add ?region=<region> to the URI or use --cloud-region.',
    },
    missing: (where) => `Not found: ${where}`,
  };
}

/** One line of cause and a hint for an SDK or network error; `endpoint` is already masked. */
export function describeS3Error(
  err: unknown,
  bucket: string,
  endpoint: string,
): { text: string; hint?: string } {
  return describeFailure(s3Classifier(bucket, endpoint), err);
}
