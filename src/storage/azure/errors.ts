import { firstLine, type Classifier, type FailureKind } from '../failure.js';

/** How Azure's RestErrors read, for the shared failure mapping (failure.ts). */

/** The fields of an Azure RestError (or any error) this module looks at. */
function fields(err: unknown): {
  name?: unknown;
  code?: unknown;
  statusCode?: unknown;
  details?: { errorCode?: unknown };
} {
  return typeof err === 'object' && err !== null ? err : {};
}

/** The service's error code (`ContainerNotFound`, also on HEAD answers without a body) or the errno. */
export function errorCode(err: unknown): string | undefined {
  const e = fields(err);
  const code = e.details?.errorCode ?? e.code;
  return typeof code === 'string' ? code : undefined;
}

export function statusOf(err: unknown): number | undefined {
  const status = fields(err).statusCode;
  return typeof status === 'number' ? status : undefined;
}

const STATUS_TEXT: Record<number, string> = {
  400: 'bad request',
  403: 'authentication or authorization failed',
  404: 'not found',
  409: 'conflict',
  412: 'a condition was not met',
};
/** Network errors and server-side trouble are worth another try; 4xx answers are not. */
export function isTransient(err: unknown): boolean {
  const status = statusOf(err);
  if (status === undefined) return fields(err).name !== 'AbortError';
  return status >= 500 || status === 408 || status === 429;
}

const AUTH_CODES =
  /^(AuthenticationFailed|AuthorizationFailure|AuthorizationPermissionMismatch|InvalidAuthenticationInfo)$/;
const UNREACHABLE = /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNRESET|EHOSTUNREACH/;

function kindOf(err: unknown, action: string, cause: string): FailureKind | undefined {
  const code = errorCode(err);
  const status = statusOf(err);
  if (code === 'ContainerNotFound') return 'bucket-missing';
  if (code === 'BlobNotFound' || (status === 404 && action === 'read')) return 'object-missing';
  if (
    status === 403 ||
    AUTH_CODES.test(code ?? '') ||
    /CredentialUnavailable|AuthenticationError/.test(String(fields(err).name))
  )
    return 'auth';
  if (UNREACHABLE.test(`${code} ${cause}`)) return 'unreachable';
  return undefined;
}

/** The classifier of one container; `endpoint` names the account's blob endpoint (no secrets). */
export function azureClassifier(container: string, endpoint: string): Classifier {
  return {
    diagnose(err, action) {
      const code = errorCode(err);
      const status = statusOf(err);
      // HEAD answers (stat) carry no message, only the status and the x-ms-error-code header.
      let cause = firstLine(err) || (status ? (STATUS_TEXT[status] ?? `HTTP ${status}`) : '');
      if (code && !cause.includes(code)) cause = cause ? `${cause} (${code})` : code;
      cause ||= 'unknown error';
      return { text: cause, kind: kindOf(err, action, cause) };
    },
    hints: {
      'bucket-missing': `Create the container "${container}" (az storage container create -n ${container}) or add ?create_bucket=true to the URI.`,
      'object-missing': 'Check the name; `dbbackup list backups --cloud <uri>` shows what is there.',
      auth: `Check the credentials for the account behind ${endpoint}: the account name and key, the SAS token's permissions and expiry, or the Azure AD role (Storage Blob Data Contributor).`,
      unreachable: `Check the endpoint ${endpoint} and the network (for Azurite: ?endpoint=http://127.0.0.1:10000/devstoreaccount1).`,
    },
    missing: (where) => `${where} not found`,
  };
}
