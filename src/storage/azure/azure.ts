import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  AnonymousCredential,
  BlobServiceClient,
  StorageSharedKeyCredential,
  type Pipeline,
  newPipeline,
  type BlockBlobClient,
  type ContainerClient,
  type Metadata,
  type RequestPolicyFactory,
  type StoragePipelineOptions,
} from '@azure/storage-blob';
import type { TokenCredential } from '@azure/identity';
import { DbBackupError, StorageError, UsageError, errorMessage } from '../../errors.js';
import type { CloudUri } from '../cloud-uri.js';
import {
  DEFAULT_CONCURRENCY,
  DEFAULT_PART_SIZE,
  partSizeForPart,
  type CloudSettings,
  type OpenCloudStore,
} from '../cloud.js';
import type { ByteRange, IncompleteUpload, ObjectInfo, PutOptions, Storage } from '../storage.js';
import {
  MAX_BACKOFF_MS,
  TIMEOUT_HINT,
  backoff,
  isTimeout,
  requestLimits,
  timedAgents,
  timeoutText,
  type Agents,
  type RequestLimits,
} from '../transport.js';

/** Azure's limits for a block blob: 50,000 committed blocks of at most 4000 MiB each. */
export const MAX_BLOCKS = 50_000;
const MAX_BLOCK_BYTES = 4000 * 1024 * 1024;
/** Whole-block attempts on top of the SDK's own retries: the block's bytes are still in memory. */
const BLOCK_ATTEMPTS = 2;

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

async function serviceClient(
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
function secretsOf(auth: AzureAuth): string[] {
  if (auth.kind === 'sharedKey') return [auth.key];
  if (auth.kind === 'sas') return [auth.sas, new URLSearchParams(auth.sas).get('sig') ?? ''];
  if (auth.kind === 'connectionString')
    return [
      auth.connectionString,
      ...[...auth.connectionString.matchAll(/(?:AccountKey|sig)=([^;&]+)/gi)].map((m) => m[1] ?? ''),
    ];
  return [];
}

/**
 * Azure metadata names must be C# identifiers (and are case-insensitive), values HTTP header text.
 * So `dbbackup-database` is stored as `dbbackup_database`, and values are percent-encoded where they
 * hold anything but printable ASCII (a database named `bücher`). `fromAzureMetadata` undoes both.
 */
export function toAzureMetadata(metadata: Record<string, string> = {}): Metadata {
  const out: Metadata = {};
  for (const [k, v] of Object.entries(metadata)) {
    const name = k.replace(/[^A-Za-z0-9_]/g, '_').replace(/^(?=\d)/, '_');
    out[name] = v.replace(/[^\x21-\x24\x26-\x7e]/gu, (c) => encodeURIComponent(c));
  }
  return out;
}

export function fromAzureMetadata(metadata: Metadata = {}): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(metadata)) {
    let value = v;
    try {
      value = decodeURIComponent(v);
    } catch {
      // Set by another tool with a bare '%': keep it as it is.
    }
    out[k.replace(/_/g, '-')] = value;
  }
  return out;
}

const TIERS = ['Hot', 'Cool', 'Cold'];

/**
 * `?tier=cool` / `?storage_class=Cold` → the access tier Azure expects. Archive is refused: an
 * archived blob cannot be read until rehydrated (hours), and every backup is read back and verified.
 */
export function parseTier(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (value.toLowerCase() === 'archive')
    throw new UsageError(
      'The Archive tier cannot be written directly: dbbackup reads every backup back to verify it',
      'Upload with ?tier=cold (or cool) and move old backups to Archive with a lifecycle management rule.',
    );
  const tier = TIERS.find((t) => t.toLowerCase() === value.toLowerCase());
  if (!tier) throw new UsageError(`Unknown Azure access tier "${value}"`, `Use one of: ${TIERS.join(', ')}.`);
  return tier;
}

/**
 * Block ids: base64 of `<upload id>-<fixed-width counter>`. Azure wants every id of one blob to have
 * the same length; the random upload id keeps two writers of one name from mixing their blocks.
 */
export function blockId(uploadId: string, n: number): string {
  return Buffer.from(`${uploadId}-${String(n).padStart(6, '0')}`).toString('base64');
}

/** Whether a block id is one `blockId` makes: dbbackup staged that block. */
export function isOwnBlockId(id: string): boolean {
  return /^[0-9a-f]{12}-\d{6}$/.test(Buffer.from(id, 'base64').toString('latin1'));
}

/** The part of a BlockBlobClient an upload needs (a fake in unit tests). */
export interface BlockTarget {
  stageBlock(
    id: string,
    body: Buffer,
    length: number,
    options: { abortSignal: AbortSignal },
  ): Promise<unknown>;
}

export interface UploadOptions {
  baseBlockSize: number;
  concurrency: number;
  uploadId?: string;
  /** A fixed pause between block attempts (unit tests); otherwise transport.ts's backoff. */
  retryDelayMs?: number;
  limits?: RequestLimits;
}

/** Network errors and server-side trouble are worth another try; 4xx answers are not. */
function transient(err: unknown): boolean {
  const status = statusOf(err);
  if (status === undefined) return fields(err).name !== 'AbortError';
  return status >= 500 || status === 408 || status === 429;
}

/**
 * Stream `body` into staged blocks of growing size (partSizeForPart, so any stream fits 50,000
 * blocks) with at most `concurrency` in flight; buffers are recycled, so memory stays at about
 * block size × (concurrency + 1). Returns the block ids to commit and the byte count. On any
 * failure the other stages are aborted and nothing is committed: the service discards uncommitted
 * blocks by itself, and the blob name never shows a partial upload.
 */
export async function stageBlocks(
  body: Readable,
  target: BlockTarget,
  o: UploadOptions,
): Promise<{ ids: string[]; size: number }> {
  const uploadId = o.uploadId ?? randomBytes(6).toString('hex');
  const abort = new AbortController();
  const inFlight = new Set<Promise<void>>();
  const pool: Buffer[] = [];
  const ids: string[] = [];
  let failure: { err: unknown } | undefined;
  const sizeOf = (n: number): number =>
    Math.min(partSizeForPart(n, o.baseBlockSize, MAX_BLOCKS), MAX_BLOCK_BYTES);
  const take = (size: number): Buffer => {
    // Past a size step the smaller buffers are dropped, so memory never holds two generations.
    for (let i = pool.length - 1; i >= 0; i--) if (pool[i]?.length !== size) pool.splice(i, 1);
    return pool.pop() ?? Buffer.allocUnsafe(size);
  };

  const stage = async (id: string, buf: Buffer, length: number): Promise<void> => {
    for (let attempt = 1; ; attempt++) {
      try {
        await target.stageBlock(id, buf.subarray(0, length), length, { abortSignal: abort.signal });
        pool.push(buf);
        return;
      } catch (err) {
        if (attempt >= BLOCK_ATTEMPTS || abort.signal.aborted || !transient(err) || isTimeout(err)) throw err;
        if (o.retryDelayMs === undefined) await backoff(o.limits ?? requestLimits(), attempt);
        else await new Promise((resolve) => setTimeout(resolve, o.retryDelayMs));
        if (abort.signal.aborted) throw err;
      }
    }
  };
  const launch = async (buf: Buffer, length: number): Promise<void> => {
    const id = blockId(uploadId, ids.length + 1);
    ids.push(id);
    // Never rejects: a rejected promise nobody awaits yet would crash Node; the error is kept instead.
    const p: Promise<void> = stage(id, buf, length).then(
      () => void inFlight.delete(p),
      (err: unknown) => {
        failure ??= { err };
        abort.abort();
        inFlight.delete(p);
      },
    );
    inFlight.add(p);
    while (inFlight.size >= o.concurrency && !failure) await Promise.race(inFlight);
    if (failure) throw failure.err;
  };

  let size = 0;
  let block = take(sizeOf(1));
  let filled = 0;
  try {
    for await (const chunk of body) {
      const data = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array | string);
      for (let off = 0; off < data.length;) {
        const n = Math.min(block.length - filled, data.length - off);
        data.copy(block, filled, off, off + n);
        filled += n;
        off += n;
        size += n;
        if (filled === block.length) {
          await launch(block, filled);
          block = take(sizeOf(ids.length + 1));
          filled = 0;
        }
      }
    }
    if (filled > 0) await launch(block, filled);
    await Promise.all(inFlight);
    if (failure) throw failure.err;
    return { ids, size };
  } catch (err) {
    // `err` is the first failure: a stage's, or the body's own (then the stages fail as aborted).
    abort.abort();
    await Promise.all(inFlight);
    throw err;
  }
}

function firstLine(text: string): string {
  return text.split('\n')[0]?.trim() ?? '';
}

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
function errorCode(err: unknown): string | undefined {
  const e = fields(err);
  const code = e.details?.errorCode ?? e.code;
  return typeof code === 'string' ? code : undefined;
}

function statusOf(err: unknown): number | undefined {
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

/** A container (plus a prefix inside it) as a Storage; every object is a block blob. */
export class AzureStorage implements Storage {
  readonly location: string;
  private containerReady: Promise<void> | undefined;

  constructor(
    private readonly container: ContainerClient,
    private readonly prefix: string,
    private readonly o: {
      scheme: string;
      endpoint: string;
      createContainer: boolean;
      tier: string | undefined;
      settings: CloudSettings;
      secrets: string[];
      agents?: Agents;
      limits?: RequestLimits;
    },
  ) {
    this.location = `${o.scheme}://${container.containerName}/${prefix}`;
  }

  private blob(key: string): BlockBlobClient {
    return this.container.getBlockBlobClient(this.prefix + key);
  }

  async put(key: string, body: Readable, options: PutOptions = {}): Promise<ObjectInfo> {
    const blob = this.blob(key);
    try {
      if (this.o.createContainer) {
        // Once per store; a failure is not remembered, so the next put tries again.
        this.containerReady ??= this.container.createIfNotExists().then(
          () => undefined,
          (err: unknown) => {
            this.containerReady = undefined;
            throw err;
          },
        );
        await this.containerReady;
      }
      const { ids, size } = await stageBlocks(body, blob, {
        baseBlockSize: this.o.settings.partSizeBytes ?? DEFAULT_PART_SIZE,
        concurrency: this.o.settings.concurrency ?? DEFAULT_CONCURRENCY,
        limits: this.o.limits,
      });
      const res = await blob
        .commitBlockList(ids, {
          metadata: toAzureMetadata(options.metadata),
          tier: this.o.tier,
          blobHTTPHeaders: { blobContentType: 'application/octet-stream' },
          // Checked by the service at commit time: two writers of one name cannot both win.
          conditions: options.noOverwrite ? { ifNoneMatch: '*' } : undefined,
        })
        .catch(async (err: unknown) => {
          // A commit the SDK retried after a lost answer finds "its own" blob: same block ids.
          if (options.noOverwrite && statusOf(err) === 409 && ids.length > 0) {
            const list = await blob.getBlockList('committed').catch(() => undefined);
            if (list?.committedBlocks?.[0]?.name === ids[0]) return { lastModified: undefined };
          }
          throw err;
        });
      return { key, size, modified: res.lastModified ?? new Date(), metadata: options.metadata ?? {} };
    } catch (err) {
      body.destroy();
      if (options.noOverwrite && (errorCode(err) === 'BlobAlreadyExists' || statusOf(err) === 412)) {
        throw new StorageError(`${this.location}${key} already exists`, {
          hint: 'Choose another name or remove it first.',
        });
      }
      throw this.wrap(err, 'upload', key);
    }
  }

  async get(key: string, range?: ByteRange): Promise<Readable> {
    const count = range?.end === undefined ? undefined : range.end - range.start + 1;
    try {
      // maxRetryRequests: a connection broken mid-download resumes from where it stopped.
      const res = await this.blob(key).download(range?.start ?? 0, count, { maxRetryRequests: 5 });
      const stream = res.readableStreamBody;
      if (!stream) throw new StorageError(`${this.location}${key}: the service sent no body`);
      return stream instanceof Readable ? stream : new Readable().wrap(stream);
    } catch (err) {
      throw this.wrap(err, 'read', key);
    }
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    try {
      const p = await this.blob(key).getProperties();
      return {
        key,
        size: p.contentLength ?? 0,
        modified: p.lastModified ?? new Date(0),
        metadata: fromAzureMetadata(p.metadata),
      };
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw this.wrap(err, 'access', key);
    }
  }

  async *list(prefix = ''): AsyncIterable<ObjectInfo> {
    // The flat listing pages through any number of blobs (5000 per request, continuation tokens).
    const pages = this.container
      .listBlobsFlat({ prefix: this.prefix + prefix, includeMetadata: true })
      .byPage({ maxPageSize: 5000 });
    try {
      for await (const page of pages) {
        for (const item of page.segment.blobItems) {
          yield {
            key: item.name.slice(this.prefix.length),
            size: item.properties.contentLength ?? 0,
            modified: item.properties.lastModified,
            metadata: fromAzureMetadata(item.metadata),
          };
        }
      }
    } catch (err) {
      throw this.wrap(err, 'list', prefix);
    }
  }

  /**
   * Blobs that have staged blocks and were never committed (a killed upload): not in a normal
   * listing, kept (and billed) by the service for up to a week. A committed blob with uncommitted
   * blocks beside it is not reported (finding those needs a request per blob).
   */
  async *listIncompleteUploads(prefix = ''): AsyncIterable<IncompleteUpload> {
    const committed = new Set<string>();
    for await (const o of this.list(prefix)) committed.add(o.key);
    try {
      for await (const item of this.container.listBlobsFlat({
        prefix: this.prefix + prefix,
        includeUncommitedBlobs: true,
      })) {
        const key = item.name.slice(this.prefix.length);
        if (committed.has(key)) continue;
        const blocks = (await this.blob(key).getBlockList('uncommitted')).uncommittedBlocks ?? [];
        yield {
          key,
          id: item.name,
          started: item.properties.createdOn ?? item.properties.lastModified,
          size: blocks.reduce((sum, b) => sum + b.size, 0),
          ours: blocks.length > 0 && blocks.every((b) => isOwnBlockId(b.name)),
        };
      }
    } catch (err) {
      throw this.wrap(err, 'list the uncommitted blobs of', prefix);
    }
  }

  /**
   * Discard the uncommitted blocks of a blob that has no committed content. Deleting the name does
   * it where the service allows that; otherwise an empty commit (only if still nothing is committed)
   * replaces the blocks, and that empty blob is deleted by its ETag. A blob committed meanwhile is
   * never touched.
   */
  async abortIncompleteUpload(upload: IncompleteUpload): Promise<void> {
    const blob = this.blob(upload.key);
    if (await this.stat(upload.key))
      throw new StorageError(`${this.location}${upload.key} was committed meanwhile: left alone`, {
        hint: 'It is a finished upload now; list it again.',
      });
    try {
      await blob.delete();
      return;
    } catch (err) {
      if (statusOf(err) !== 404) throw this.wrap(err, 'discard the uncommitted blocks of', upload.key);
    }
    try {
      const res = await blob.commitBlockList([], { conditions: { ifNoneMatch: '*' } });
      await blob.delete({ conditions: { ifMatch: res.etag } });
    } catch (err) {
      if (statusOf(err) === 404) return; // gone already
      throw this.wrap(err, 'discard the uncommitted blocks of', upload.key);
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await this.blob(key).deleteIfExists({ deleteSnapshots: 'include' });
    } catch (err) {
      if (statusOf(err) !== 404) throw this.wrap(err, 'delete', key);
    }
  }

  /** One line naming the blob and the cause, with a hint for the usual mistakes; no secrets. */
  private wrap(err: unknown, action: string, key: string): Error {
    if (err instanceof DbBackupError) return err;
    const where = `${this.location}${key}`;
    const timeout = this.o.agents?.takeTimeout();
    if (timeout)
      return new StorageError(
        `Could not ${action} ${where}: ${timeoutText(timeout, this.o.limits ?? requestLimits())}`,
        { hint: TIMEOUT_HINT, cause: err },
      );
    const code = errorCode(err);
    const status = statusOf(err);
    // HEAD answers (stat) carry no message, only the status and the x-ms-error-code header.
    let cause = firstLine(errorMessage(err)) || (status ? (STATUS_TEXT[status] ?? `HTTP ${status}`) : '');
    if (code && !cause.includes(code)) cause = cause ? `${cause} (${code})` : code;
    cause ||= 'unknown error';
    for (const s of this.o.secrets) if (s.length >= 4) cause = cause.split(s).join('****');
    const name = this.container.containerName;
    let hint: string | undefined;
    if (code === 'ContainerNotFound')
      hint = `Create the container "${name}" (az storage container create -n ${name}) or add ?create_bucket=true to the URI.`;
    else if (code === 'BlobNotFound' || (status === 404 && action === 'read'))
      return new StorageError(`${where} not found`, {
        hint: 'Check the name; `dbbackup list backups --cloud <uri>` shows what is there.',
        cause: err,
      });
    else if (
      status === 403 ||
      /^(AuthenticationFailed|AuthorizationFailure|AuthorizationPermissionMismatch|InvalidAuthenticationInfo)$/.test(
        code ?? '',
      ) ||
      /CredentialUnavailable|AuthenticationError/.test(String(fields(err).name))
    )
      hint = `Check the credentials for the account behind ${this.o.endpoint}: the account name and key, the SAS token's permissions and expiry, or the Azure AD role (Storage Blob Data Contributor).`;
    else if (/ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNRESET|EHOSTUNREACH/.test(`${code} ${cause}`))
      hint = `Check the endpoint ${this.o.endpoint} and the network (for Azurite: ?endpoint=http://127.0.0.1:10000/devstoreaccount1).`;
    return new StorageError(`Could not ${action} ${where}: ${cause}`, { hint, cause: err });
  }
}

/** The blob endpoint a connection string names, for messages (never the string: it holds the key). */
function connectionStringEndpoint(connectionString: string): string {
  try {
    return BlobServiceClient.fromConnectionString(connectionString).url.replace(/\?.*$/, '');
  } catch {
    return 'the endpoint in AZURE_STORAGE_CONNECTION_STRING';
  }
}

/** Container names: 3–63 lower-case letters, digits and single hyphens (or `$root`). */
const CONTAINER_NAME = /^(?:\$root|[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62})$/;

export const openAzure: OpenCloudStore = async (uri, prefix, settings) => {
  if (!CONTAINER_NAME.test(uri.bucket)) {
    throw new UsageError(
      `Invalid Azure container name "${uri.bucket}" in ${uri.display}`,
      'Container names are 3–63 lower-case letters, digits and single hyphens.',
    );
  }
  const auth = resolveAzureAuth(uri, settings);
  const limits = requestLimits(settings.timeoutSeconds);
  const label =
    auth.kind === 'connectionString' ? connectionStringEndpoint(auth.connectionString) : auth.endpoint;
  const agents = timedAgents(limits, label);
  const service = await serviceClient(auth, limits, agents);
  return new AzureStorage(service.getContainerClient(uri.bucket), prefix, {
    agents,
    limits,
    scheme: uri.scheme,
    endpoint: auth.kind === 'connectionString' ? service.url.replace(/\?.*$/, '') : auth.endpoint,
    createContainer: uri.params.createBucket === true,
    tier: parseTier(uri.params.storageClass),
    settings,
    secrets: secretsOf(auth),
  });
};
