import {
  AnonymousCredential,
  BlobServiceClient,
  StorageSharedKeyCredential,
  newPipeline,
  type Pipeline,
  type RequestPolicyFactory,
  type StoragePipelineOptions,
} from '@azure/storage-blob';
import type { TokenCredential } from '@azure/identity';
import { UsageError } from '../../errors.js';
import type { CloudUri } from '../cloud-uri.js';
import type { CloudSettings } from '../cloud.js';
import { MAX_BACKOFF_MS, type Agents, type RequestLimits } from '../transport.js';

/**
 * The SDK retries transient failures (network errors, 5xx, 408, 429) itself, as many times as every
 * backend does (transport.ts) and with pauses under 8 s: its default backoff (4 s, growing to 2 min)
 * makes a dead endpoint look like a hang.
 */
function pipelineOptions(limits: RequestLimits): StoragePipelineOptions {
  return {
    retryOptions: { maxTries: limits.attempts, retryDelayInMs: 1000, maxRetryDelayInMs: MAX_BACKOFF_MS },
    userAgentOptions: { userAgentPrefix: 'dbbackup' },
  };
}

type Credential = StorageSharedKeyCredential | AnonymousCredential | TokenCredential;

/**
 * The SDK's own pipeline plus one step that sends every request through the timed sockets: the SDK
 * has no client-side timeout of its own (tryTimeoutInMs only asks the server to give up).
 */
function timedPipeline(credential: Credential, limits: RequestLimits, agents: Agents): Pipeline {
  const base = newPipeline(credential, pipelineOptions(limits));
  const useAgents: RequestPolicyFactory = {
    create: (next) => ({
      sendRequest: (request) => {
        request.agent = agents.for(request.url);
        return next.sendRequest(request);
      },
    }),
  };
  // Added to the SDK's own pipeline object, which also carries the credential for signing.
  base.factories.push(useAgents);
  return base;
}

const CREDENTIAL_HINTS =
  'Give the account and key in the URI (?account=NAME&key=KEY) or a SAS token (?sas=…), ' +
  'or --cloud-access-key NAME --cloud-secret-key KEY, or set AZURE_STORAGE_CONNECTION_STRING, ' +
  'or AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN, ' +
  'or AZURE_STORAGE_ACCOUNT alone to sign in with Azure AD (az login, managed identity, AZURE_CLIENT_ID…).';

/** How to reach and authenticate to the account; decided once from URI, flags and environment. */
export type AzureAuth =
  | { kind: 'sharedKey'; endpoint: string; account: string; key: string }
  | { kind: 'sas'; endpoint: string; sas: string }
  | { kind: 'connectionString'; connectionString: string }
  | { kind: 'token'; endpoint: string };

/** Credentials in the documented order: URI, flags, connection string, account + key/SAS, Azure AD. */
export function resolveAzureAuth(
  uri: CloudUri,
  settings: CloudSettings,
  env: NodeJS.ProcessEnv = process.env,
): AzureAuth {
  const p = uri.params;
  const account = p.account ?? settings.accessKey ?? env.AZURE_STORAGE_ACCOUNT;
  const explicitEndpoint = p.endpoint ?? settings.endpoint;
  const endpointFor = (name: string | undefined): string => {
    const endpoint = explicitEndpoint ?? (name ? `https://${name}.blob.core.windows.net` : undefined);
    if (!endpoint) throw new UsageError(`No Azure storage account for ${uri.display}`, CREDENTIAL_HINTS);
    if (!URL.canParse(endpoint))
      throw new UsageError(
        `Invalid Azure endpoint "${endpoint}"`,
        'Use a URL such as https://ACCOUNT.blob.core.windows.net or http://127.0.0.1:10000/devstoreaccount1.',
      );
    return endpoint.replace(/\/+$/, '');
  };
  if (p.key !== undefined) {
    if (!account) throw new UsageError(`?key= needs ?account= in ${uri.display}`, CREDENTIAL_HINTS);
    return { kind: 'sharedKey', endpoint: endpointFor(account), account, key: p.key };
  }
  if (p.sas !== undefined) return { kind: 'sas', endpoint: endpointFor(account), sas: p.sas };
  if (settings.accessKey && settings.secretKey) {
    const name = p.account ?? settings.accessKey;
    return { kind: 'sharedKey', endpoint: endpointFor(name), account: name, key: settings.secretKey };
  }
  if (env.AZURE_STORAGE_CONNECTION_STRING)
    return { kind: 'connectionString', connectionString: env.AZURE_STORAGE_CONNECTION_STRING };
  if (account && env.AZURE_STORAGE_KEY)
    return { kind: 'sharedKey', endpoint: endpointFor(account), account, key: env.AZURE_STORAGE_KEY };
  if (account && env.AZURE_STORAGE_SAS_TOKEN)
    return { kind: 'sas', endpoint: endpointFor(account), sas: env.AZURE_STORAGE_SAS_TOKEN };
  return { kind: 'token', endpoint: endpointFor(account) };
}

export async function serviceClient(
  auth: AzureAuth,
  limits: RequestLimits,
  agents: Agents,
): Promise<BlobServiceClient> {
  const timed = (url: string, credential: Credential): BlobServiceClient =>
    new BlobServiceClient(url, timedPipeline(credential, limits, agents));
  switch (auth.kind) {
    case 'sharedKey':
      return timed(auth.endpoint, new StorageSharedKeyCredential(auth.account, auth.key));
    case 'sas':
      return timed(`${auth.endpoint}?${auth.sas.replace(/^\?/, '')}`, new AnonymousCredential());
    case 'connectionString':
      try {
        const parsed = BlobServiceClient.fromConnectionString(auth.connectionString);
        return timed(parsed.url, parsed.credential);
      } catch {
        // The SDK's message may quote the string, key included: say only which variable is wrong.
        throw new UsageError(
          'AZURE_STORAGE_CONNECTION_STRING is not a valid Azure Storage connection string',
          'Copy it from the portal (Access keys) or use DefaultEndpointsProtocol=…;AccountName=…;AccountKey=…;BlobEndpoint=….',
        );
      }
    case 'token': {
      // Loaded only here: @azure/identity is large and most runs use a key.
      const { DefaultAzureCredential } = await import('@azure/identity');
      return timed(auth.endpoint, new DefaultAzureCredential());
    }
  }
}

/** Values that must never reach a message: keys, SAS tokens, the connection string's key. */
export function secretsOf(auth: AzureAuth): string[] {
  if (auth.kind === 'sharedKey') return [auth.key];
  if (auth.kind === 'sas') return [auth.sas, new URLSearchParams(auth.sas).get('sig') ?? ''];
  if (auth.kind === 'connectionString')
    return [
      auth.connectionString,
      ...[...auth.connectionString.matchAll(/(?:AccountKey|sig)=([^;&]+)/gi)].map((m) => m[1] ?? ''),
    ];
  return [];
}

/** The blob endpoint a connection string names, for messages (never the string: it holds the key). */
export function connectionStringEndpoint(connectionString: string): string {
  try {
    return BlobServiceClient.fromConnectionString(connectionString).url.replace(/\?.*$/, '');
  } catch {
    return 'the endpoint in AZURE_STORAGE_CONNECTION_STRING';
  }
}
