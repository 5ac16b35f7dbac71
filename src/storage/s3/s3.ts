import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type BucketLocationConstraint,
  type CompletedPart,
  type ListObjectsV2CommandOutput,
  type S3ClientConfig,
  type StorageClass,
} from '@aws-sdk/client-s3';
import { DbBackupError, StorageError, UsageError, errnoCode, errorMessage } from '../../errors.js';
import { maskUri, type CloudUri } from '../cloud-uri.js';
import {
  DEFAULT_CONCURRENCY,
  DEFAULT_PART_SIZE,
  partSizeForPart,
  type CloudSettings,
  type OpenCloudStore,
} from '../cloud.js';
import {
  readAll,
  type ByteRange,
  type IncompleteUpload,
  type ObjectInfo,
  type PutOptions,
  type Storage,
} from '../storage.js';
import { RecordWriter, isRecordKey, newRecordKey, parseRecord, type UploadRecord } from './upload-record.js';
import {
  TIMEOUT_HINT,
  backoff,
  cleanupRequests,
  isTimeout,
  requestLimits,
  timedAgents,
  timeoutText,
  type Agents,
  type RequestLimits,
} from '../transport.js';

/** S3's own limits: parts per upload and bytes per part. */
export const S3_MAX_PARTS = 10_000;
export const S3_MAX_PART_SIZE = 5 * 1024 ** 3;
/** Our own attempts per part on top of the SDK's: the part's bytes are in memory, so re-sending is free. */
const PART_ATTEMPTS = 3;

/** Size of part n: growing so an unknown-length stream fits 10,000 parts, capped at S3's 5 GiB. */
export function s3PartSize(n: number, base = DEFAULT_PART_SIZE): number {
  return Math.min(partSizeForPart(n, base, S3_MAX_PARTS), S3_MAX_PART_SIZE);
}

type ChecksumMode = 'WHEN_REQUIRED' | 'WHEN_SUPPORTED';

/** Where and how to talk to S3, decided from the URI, flags and environment (pure, so unit-testable). */
export interface S3Target {
  /** Undefined for AWS itself (the SDK derives it from the region). */
  endpoint?: string;
  /** Undefined means "ask the AWS default chain, else us-east-1". */
  region?: string;
  forcePathStyle: boolean;
  aws: boolean;
  checksums: ChecksumMode;
}

/** The endpoint's host name, or a usage error for anything that is not an http(s) URL. */
function endpointHost(endpoint: string): string {
  try {
    const url = new URL(endpoint);
    if ((url.protocol === 'http:' || url.protocol === 'https:') && url.hostname) return url.hostname;
  } catch {
    // reported below
  }
  throw new UsageError(
    `Invalid S3 endpoint "${maskUri(endpoint)}"`,
    'Use a URL such as http://127.0.0.1:9000 or https://s3.example.com (URL-encode it inside ?endpoint=).',
  );
}

export function s3Target(
  uri: CloudUri,
  settings: CloudSettings,
  env: NodeJS.ProcessEnv = process.env,
): S3Target {
  let region =
    uri.params.region ?? settings.region ?? (env.AWS_REGION || env.AWS_DEFAULT_REGION || undefined);
  let endpoint = uri.params.endpoint ?? settings.endpoint;
  if (uri.scheme === 'minio' && !endpoint) {
    throw new UsageError(
      `${uri.display}: minio:// needs the server's address`,
      'Add ?endpoint=https://minio.example:9000 to the URI, or use --cloud-endpoint / DBBACKUP_CLOUD_ENDPOINT.',
    );
  }
  if (uri.scheme === 'b2' && !endpoint) {
    if (!region) {
      throw new UsageError(
        `${uri.display}: b2:// needs a region or an endpoint`,
        'Add ?region=us-west-004 (from the bucket details in Backblaze), or ?endpoint=https://s3.<region>.backblazeb2.com.',
      );
    }
    endpoint = `https://s3.${region}.backblazeb2.com`;
  }
  const host = endpoint === undefined ? undefined : endpointHost(endpoint);
  // B2 signs with the region in its host name.
  region ??= /^s3\.([a-z0-9-]+)\.backblazeb2\.com$/i.exec(host ?? '')?.[1];
  const aws = host === undefined || /(^|\.)amazonaws\.com(\.cn)?$/i.test(host);
  // S3-compatible servers lag behind the SDK's default CRC32 checksums (aws-sdk-js-v3#6810).
  const mode = env.DBBACKUP_S3_CHECKSUMS?.toLowerCase() || undefined;
  if (mode !== undefined && mode !== 'when_required' && mode !== 'when_supported') {
    throw new UsageError(
      `Invalid DBBACKUP_S3_CHECKSUMS "${env.DBBACKUP_S3_CHECKSUMS}"`,
      'Use when_required or when_supported.',
    );
  }
  const checksums: ChecksumMode =
    mode === 'when_supported' || (mode === undefined && aws) ? 'WHEN_SUPPORTED' : 'WHEN_REQUIRED';
  // Every S3-compatible server understands path style; virtual hosts need DNS that emulators lack.
  const forcePathStyle = uri.params.pathStyle ?? !aws;
  return { endpoint, region, forcePathStyle, aws, checksums };
}

/** The AWS default chain (AWS_REGION, ~/.aws/config profile), else us-east-1. */
async function defaultRegion(): Promise<string> {
  const probe = new S3Client({});
  try {
    return await probe.config.region();
  } catch {
    return 'us-east-1';
  } finally {
    probe.destroy();
  }
}

// ---- errors -----------------------------------------------------------------------------------

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

function httpStatus(err: unknown): number | undefined {
  return shape(err).$metadata?.httpStatusCode;
}

/** A missing object (HEAD gives a bare 404 "NotFound"); a missing bucket is not "not found". */
function isNotFound(err: unknown): boolean {
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

/** One line of cause and a hint for an SDK or network error; `endpoint` is already masked. */
export function describeS3Error(
  err: unknown,
  bucket: string,
  endpoint: string,
): { text: string; hint?: string } {
  const name = s3ErrorName(err);
  const status = httpStatus(err);
  const code = errnoCode(err);
  let text = (errorMessage(err).split('\n')[0] ?? '').trim();
  if (BARE.has(text)) text = BARE.has(name) ? (BARE_STATUS[status ?? 0] ?? 'unknown error') : name;
  else if (name && name !== 'Error' && !text.includes(name)) text = `${name}: ${text}`;
  if (status) text += ` (HTTP ${status})`;
  let hint: string | undefined;
  if (name === 'NoSuchBucket') {
    hint = `The bucket "${bucket}" does not exist: create it or add ?create_bucket=true to the URI.`;
  } else if (CREDENTIAL_ERRORS.has(name) || status === 403) {
    hint =
      'Check the credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or --cloud-access-key / --cloud-secret-key, and that they may use this bucket.';
  } else if ((code && UNREACHABLE.has(code)) || name === 'TimeoutError') {
    hint = `Could not reach the S3 endpoint ${endpoint}: check ?endpoint= / --cloud-endpoint, the network, and that the server is running.`;
  } else if (status === 413 || name === 'EntityTooLarge') {
    hint = 'The server refused the request size: use a smaller --cloud-part-size.';
  } else if (name === 'PermanentRedirect' || name === 'AuthorizationHeaderMalformed') {
    hint = 'The bucket is in another region: add ?region=<region> to the URI or use --cloud-region.';
  }
  return { text, hint };
}

// ---- user metadata: HTTP headers carry ASCII only -----------------------------------------------

/** Non-ASCII values travel RFC 2047-encoded, as the AWS console does it. */
export function encodeMetadataValue(value: string): string {
  return /^[\x20-\x7e]*$/.test(value) ? value : `=?UTF-8?B?${Buffer.from(value).toString('base64')}?=`;
}

export function decodeMetadataValue(value: string): string {
  const m = /^=\?UTF-8\?B\?([A-Za-z0-9+/=]*)\?=$/i.exec(value);
  return m?.[1] !== undefined ? Buffer.from(m[1], 'base64').toString('utf8') : value;
}

function mapValues(
  record: Record<string, string> | undefined,
  fn: (v: string) => string,
): Record<string, string> {
  return Object.fromEntries(Object.entries(record ?? {}).map(([k, v]) => [k, fn(v)]));
}

// ---- reading a stream in parts ------------------------------------------------------------------

/**
 * Cuts a stream into parts of the requested sizes. Holds the part being filled plus at most one
 * carried chunk, and peeks one chunk ahead so the caller knows whether a part is the last. Buffers
 * of uploaded parts come back through `release` and are refilled: without that, finished parts wait
 * for the garbage collector and RSS grows by tens of MB beyond part size × (concurrency + 1).
 */
class PartReader {
  private readonly it: AsyncIterator<unknown>;
  private carry: Buffer | undefined;
  private ended = false;
  private readonly spare: Buffer[] = [];

  constructor(body: Readable) {
    this.it = body[Symbol.asyncIterator]();
  }

  async read(size: number, check: () => void): Promise<{ data: Buffer; last: boolean }> {
    // allocUnsafe of a large size is a lazily-committed mapping: a tiny sidecar touches a few pages only.
    let buf = this.spare.pop();
    if (buf?.length !== size) {
      this.spare.length = 0; // the part size grew: the old buffers are of no more use
      buf = Buffer.allocUnsafe(size);
    }
    let filled = 0;
    while (filled < size) {
      const chunk = this.carry ?? (await this.next());
      this.carry = undefined;
      if (!chunk) break;
      check();
      const n = Math.min(chunk.length, size - filled);
      chunk.copy(buf, filled, 0, n);
      filled += n;
      if (n < chunk.length) this.carry = chunk.subarray(n);
    }
    this.carry ??= await this.next();
    return { data: buf.subarray(0, filled), last: !this.carry };
  }

  /** Hand back the buffer behind a part once it is uploaded (or given up on). */
  release(data: Buffer, limit: number): void {
    if (data.byteOffset === 0 && this.spare.length < limit) this.spare.push(Buffer.from(data.buffer));
  }

  private async next(): Promise<Buffer | undefined> {
    while (!this.ended) {
      const r = await this.it.next();
      if (r.done) this.ended = true;
      else {
        const v: unknown = r.value;
        const chunk = Buffer.isBuffer(v) ? v : Buffer.from(typeof v === 'string' ? v : (v as Uint8Array));
        if (chunk.length) return chunk;
      }
    }
    return undefined;
  }
}

// ---- the store -----------------------------------------------------------------------------------

export interface S3StorageOptions {
  bucket: string;
  /** '' or ending in '/'. */
  prefix: string;
  /** `scheme://bucket`, for messages. */
  display: string;
  /** Masked endpoint for messages. */
  endpointLabel: string;
  region: string;
  aws: boolean;
  partSize?: number;
  concurrency?: number;
  storageClass?: string;
  createBucket?: boolean;
  /** Masked out of every message. */
  secrets?: string[];
  /** The timed sockets behind `client` and `reader` (see transport.ts). */
  agents?: Agents;
  limits?: RequestLimits;
}

/** A bucket prefix as a Storage. `client` uploads (with an idle timeout); `reader` streams downloads. */
export class S3Storage implements Storage {
  readonly location: string;
  private readonly bucket: string;
  private readonly prefix: string;
  private bucketReady: Promise<void> | undefined;
  /** Cleared when a server rejects If-None-Match instead of ignoring it. */
  private conditionalWrites = true;

  constructor(
    readonly client: S3Client,
    readonly reader: S3Client,
    private readonly o: S3StorageOptions,
  ) {
    this.bucket = o.bucket;
    this.prefix = o.prefix;
    this.location = `${o.display}${o.prefix ? `/${o.prefix.replace(/\/+$/, '')}` : ''}`;
  }

  private where(key: string): string {
    return `${this.location}/${key}`;
  }

  async put(key: string, body: Readable, options: PutOptions = {}): Promise<ObjectInfo> {
    const Key = this.prefix + key;
    let size: number;
    try {
      if (this.o.createBucket) await this.ensureBucket();
      if (options.noOverwrite && (await this.stat(key))) throw this.exists(key);
      const reader = new PartReader(body);
      const first = await reader.read(s3PartSize(1, this.o.partSize), () => undefined);
      const common = {
        Bucket: this.bucket,
        Key,
        ContentType: 'application/octet-stream',
        Metadata: mapValues(options.metadata, encodeMetadataValue),
        StorageClass: this.o.storageClass as StorageClass | undefined,
      };
      if (first.last) {
        size = first.data.length;
        await this.conditional(options, key, (IfNoneMatch) =>
          this.client.send(
            new PutObjectCommand({ ...common, Body: first.data, ContentLength: size, IfNoneMatch }),
          ),
        );
      } else {
        size = await this.putMultipart(common, key, reader, first.data, options);
      }
    } catch (err) {
      body.destroy();
      throw this.wrap(err, 'upload', key);
    }
    const info = await this.stat(key);
    if (info?.size !== size) {
      throw new StorageError(
        `${this.where(key)} reads back as ${info ? `${info.size} bytes` : 'missing'} after uploading ${size}`,
        { hint: 'The server does not store what it accepts; try DBBACKUP_S3_CHECKSUMS=when_required.' },
      );
    }
    return info;
  }

  /**
   * Upload parts as they fill, at most `concurrency` in flight: memory stays at part size ×
   * (concurrency + 1) whatever the stream's length. Any failure aborts the upload, so nothing
   * appears under the key.
   */
  private async putMultipart(
    common: {
      Bucket: string;
      Key: string;
      Metadata: Record<string, string>;
      ContentType: string;
      StorageClass?: StorageClass;
    },
    key: string,
    reader: PartReader,
    firstData: Buffer,
    options: PutOptions,
  ): Promise<number> {
    const { UploadId } = await this.client.send(new CreateMultipartUploadCommand(common));
    if (!UploadId) throw new StorageError(`The server returned no upload id for ${this.where(key)}`);
    // A note of this upload beside the name until it is completed or aborted: if the process is
    // killed, `cloud list --all` and `cleanup --prune-incomplete` find the parts it left.
    const recordKey = newRecordKey(key);
    const record: UploadRecord = { key, uploadId: UploadId, started: new Date().toISOString(), bytes: 0 };
    const writeRecord = (bytes: number): Promise<void> =>
      this.client
        .send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key: this.prefix + recordKey,
            Body: JSON.stringify({ ...record, bytes }),
            ContentType: 'application/json',
          }),
        )
        .then(() => undefined);
    await writeRecord(0).catch(() => undefined);
    const recorder = new RecordWriter(writeRecord);
    const dropRecord = async (): Promise<void> => {
      await recorder.finish();
      await cleanupRequests(() =>
        this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.prefix + recordKey })),
      ).catch(() => undefined);
    };
    let sent = 0;
    const cancel = new AbortController();
    const parts: CompletedPart[] = [];
    const inFlight = new Set<Promise<void>>();
    let failure: { err: unknown } | undefined;
    const check = (): void => {
      if (failure) throw failure.err;
    };
    const limit = this.o.concurrency ?? DEFAULT_CONCURRENCY;
    let total = 0;
    try {
      let part = { data: firstData, last: false };
      for (let n = 1; ; n++) {
        if (n > S3_MAX_PARTS)
          throw new StorageError(`${this.where(key)} would need more than ${S3_MAX_PARTS} parts`);
        total += part.data.length;
        const data = part.data;
        const p: Promise<void> = this.sendPart(
          { Bucket: common.Bucket, Key: common.Key, UploadId, PartNumber: n, Body: data },
          cancel.signal,
        )
          .then(
            (ETag) => {
              parts.push({ ETag, PartNumber: n });
              sent += data.length;
              recorder.update(sent);
            },
            (err: unknown) => {
              failure ??= { err };
              cancel.abort();
            },
          )
          .finally(() => {
            inFlight.delete(p);
            reader.release(data, limit);
          });
        inFlight.add(p);
        if (part.last) break;
        while (inFlight.size >= limit) await Promise.race(inFlight);
        check();
        part = await reader.read(s3PartSize(n + 1, this.o.partSize), check);
        if (!part.data.length) break;
      }
      await Promise.all(inFlight);
      check();
      parts.sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
      await this.conditional(options, key, (IfNoneMatch) =>
        this.client.send(
          new CompleteMultipartUploadCommand({
            Bucket: common.Bucket,
            Key: common.Key,
            UploadId,
            MultipartUpload: { Parts: parts },
            IfNoneMatch,
          }),
        ),
      );
      await dropRecord();
      return total;
    } catch (err) {
      cancel.abort();
      await Promise.allSettled(inFlight);
      const aborted = await cleanupRequests(() =>
        this.client.send(
          new AbortMultipartUploadCommand({ Bucket: common.Bucket, Key: common.Key, UploadId }),
        ),
      ).then(
        () => true,
        () => false,
      );
      // The record stays when the abort failed: the parts are still there to be found and pruned.
      if (aborted) await dropRecord();
      else await recorder.finish();
      // `err` is the first failure: a part's (via check), the body's, or Complete's.
      throw err;
    }
  }

  private async sendPart(
    input: { Bucket: string; Key: string; UploadId: string; PartNumber: number; Body: Buffer },
    signal: AbortSignal,
  ): Promise<string> {
    for (let attempt = 1; ; attempt++) {
      try {
        const { ETag } = await this.client.send(new UploadPartCommand(input), { abortSignal: signal });
        if (!ETag) throw new StorageError(`The server returned no ETag for part ${input.PartNumber}`);
        return ETag;
      } catch (err) {
        if (signal.aborted || attempt >= PART_ATTEMPTS || !isTransient(err) || isTimeout(err)) throw err;
        await backoff(this.o.limits ?? requestLimits(), attempt);
      }
    }
  }

  /** A write with If-None-Match: * when asked not to overwrite; servers that reject the header get it without. */
  private async conditional(
    options: PutOptions,
    key: string,
    send: (ifNoneMatch: string | undefined) => Promise<unknown>,
  ): Promise<void> {
    const want = options.noOverwrite === true && this.conditionalWrites;
    try {
      await send(want ? '*' : undefined);
    } catch (err) {
      const name = s3ErrorName(err);
      if (want && (name === 'PreconditionFailed' || httpStatus(err) === 412)) throw this.exists(key);
      if (!want || (name !== 'NotImplemented' && httpStatus(err) !== 501)) throw err;
      this.conditionalWrites = false;
      await send(undefined);
    }
  }

  private exists(key: string): StorageError {
    return new StorageError(`${this.where(key)} already exists`, {
      hint: 'Choose another name or remove it first.',
    });
  }

  private ensureBucket(): Promise<void> {
    this.bucketReady ??= this.createBucketIfMissing().catch((err: unknown) => {
      this.bucketReady = undefined;
      throw err;
    });
    return this.bucketReady;
  }

  private async createBucketIfMissing(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return;
    } catch (err) {
      if (!isNotFound(err) && s3ErrorName(err) !== 'NoSuchBucket') throw this.wrap(err, 'check bucket');
    }
    const constraint = this.o.aws && this.o.region !== 'us-east-1';
    try {
      await this.client.send(
        new CreateBucketCommand({
          Bucket: this.bucket,
          CreateBucketConfiguration: constraint
            ? { LocationConstraint: this.o.region as BucketLocationConstraint }
            : undefined,
        }),
      );
    } catch (err) {
      if (s3ErrorName(err) !== 'BucketAlreadyOwnedByYou') throw this.wrap(err, 'create bucket');
    }
  }

  async get(key: string, range?: ByteRange): Promise<Readable> {
    const Range = range ? `bytes=${range.start}-${range.end ?? ''}` : undefined;
    try {
      const out = await this.reader.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.prefix + key, Range }),
      );
      if (!(out.Body instanceof Readable))
        throw new StorageError(`${this.where(key)}: the response has no readable body`);
      return out.Body;
    } catch (err) {
      if (isNotFound(err)) {
        throw new StorageError(`Not found: ${this.where(key)}`, {
          hint: 'Check the name; "dbbackup list backups --cloud <uri>" shows what is there.',
          cause: err,
        });
      }
      // A range starting at 0 of an empty object: S3 answers 416; the honest answer is no bytes.
      if (s3ErrorName(err) === 'InvalidRange' && range?.start === 0) return Readable.from([]);
      throw this.wrap(err, 'read', key);
    }
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    try {
      const h = await this.client.send(
        new HeadObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }),
      );
      return {
        key,
        size: h.ContentLength ?? 0,
        modified: h.LastModified ?? new Date(0),
        metadata: mapValues(h.Metadata, decodeMetadataValue),
      };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw this.wrap(err, 'stat', key);
    }
  }

  async *list(prefix = ''): AsyncIterable<ObjectInfo> {
    let token: string | undefined;
    do {
      let page: ListObjectsV2CommandOutput;
      try {
        page = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.prefix + prefix,
            ContinuationToken: token,
          }),
        );
      } catch (err) {
        throw this.wrap(err, 'list', prefix || undefined);
      }
      for (const o of page.Contents ?? []) {
        // Keys ending in '/' are "folder" markers that consoles create, not objects.
        if (!o.Key?.startsWith(this.prefix) || o.Key.endsWith('/')) continue;
        yield {
          key: o.Key.slice(this.prefix.length),
          size: o.Size ?? 0,
          modified: o.LastModified ?? new Date(0),
        };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /**
   * Unfinished multipart uploads: dbbackup's own records (every server), merged with the server's
   * ListMultipartUploads where it has one (real S3 and MinIO do; fauxqs and s3rver do not).
   */
  async *listIncompleteUploads(prefix = ''): AsyncIterable<IncompleteUpload> {
    const seen = new Set<string>();
    for await (const o of this.list(prefix)) {
      if (!isRecordKey(o.key)) continue;
      const record = parseRecord(
        (await readAll(this, o.key, 64 * 1024).catch(() => Buffer.alloc(0))).toString(),
      );
      if (!record) continue;
      seen.add(record.uploadId);
      yield {
        key: record.key,
        id: record.uploadId,
        started: new Date(record.started),
        size: record.bytes,
        ours: true,
        record: o.key,
      };
    }
    for await (const u of this.serverUploads(prefix)) if (!seen.has(u.id)) yield u;
  }

  private async *serverUploads(prefix: string): AsyncIterable<IncompleteUpload> {
    let KeyMarker: string | undefined;
    let UploadIdMarker: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new ListMultipartUploadsCommand({
            Bucket: this.bucket,
            Prefix: this.prefix + prefix,
            KeyMarker,
            UploadIdMarker,
          }),
        );
      } catch (err) {
        // Servers without the call (s3rver: 501) simply have nothing more to say.
        if (s3ErrorName(err) === 'NotImplemented' || httpStatus(err) === 501) return;
        throw this.wrap(err, 'list the multipart uploads of', prefix || undefined);
      }
      for (const u of page.Uploads ?? []) {
        if (!u.Key?.startsWith(this.prefix) || !u.UploadId) continue;
        yield {
          key: u.Key.slice(this.prefix.length),
          id: u.UploadId,
          started: u.Initiated,
          size: await this.partsSize(u.Key, u.UploadId),
          ours: false,
        };
      }
      KeyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
      UploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
    } while (KeyMarker);
  }

  private async partsSize(Key: string, UploadId: string): Promise<number | undefined> {
    let total = 0;
    let PartNumberMarker: string | undefined;
    try {
      do {
        const page = await this.client.send(
          new ListPartsCommand({ Bucket: this.bucket, Key, UploadId, PartNumberMarker }),
        );
        for (const p of page.Parts ?? []) total += p.Size ?? 0;
        PartNumberMarker = page.IsTruncated ? page.NextPartNumberMarker : undefined;
      } while (PartNumberMarker);
      return total;
    } catch {
      return undefined;
    }
  }

  async abortIncompleteUpload(upload: IncompleteUpload): Promise<void> {
    try {
      await this.client.send(
        new AbortMultipartUploadCommand({
          Bucket: this.bucket,
          Key: this.prefix + upload.key,
          UploadId: upload.id,
        }),
      );
    } catch (err) {
      // Already completed or aborted: only the record is left.
      if (s3ErrorName(err) !== 'NoSuchUpload' && httpStatus(err) !== 404)
        throw this.wrap(err, 'abort the incomplete upload of', upload.key);
    }
    if (upload.record) await this.delete(upload.record);
  }

  async delete(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
    } catch (err) {
      if (!isNotFound(err)) throw this.wrap(err, 'delete', key);
    }
  }

  private wrap(err: unknown, action: string, key?: string): DbBackupError {
    // Errors raised upstream (a failed dump, a bad checksum) keep their own message and hint.
    if (err instanceof DbBackupError) return err;
    const timeout = this.o.agents?.takeTimeout();
    const described = describeS3Error(err, this.bucket, this.o.endpointLabel);
    const { text, hint } = timeout
      ? { text: timeoutText(timeout, this.o.limits ?? requestLimits()), hint: TIMEOUT_HINT }
      : described;
    let message = `Could not ${action} ${key === undefined ? this.location : this.where(key)}: ${text}`;
    for (const s of this.o.secrets ?? []) if (s) message = message.replaceAll(s, '****');
    return new StorageError(message, { hint, cause: err });
  }
}

export const openS3: OpenCloudStore = async (uri, prefix, settings) => {
  const target = s3Target(uri, settings);
  const limits = requestLimits(settings.timeoutSeconds);
  const region = target.region ?? (await defaultRegion());
  const accessKey = uri.params.accessKey ?? settings.accessKey;
  const secretKey = uri.params.secretKey ?? settings.secretKey;
  if (Boolean(accessKey) !== Boolean(secretKey)) {
    throw new UsageError(
      'Give both an access key and a secret key, or neither',
      'Set --cloud-access-key with --cloud-secret-key, or use AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or a profile.',
    );
  }
  const base: S3ClientConfig = {
    region,
    endpoint: target.endpoint,
    forcePathStyle: target.forcePathStyle,
    // AWS answers a bucket in another region with a redirect the SDK can follow.
    followRegionRedirects: target.aws,
    credentials: accessKey && secretKey ? { accessKeyId: accessKey, secretAccessKey: secretKey } : undefined,
    requestChecksumCalculation: target.checksums,
    responseChecksumValidation: target.checksums,
    // The SDK's standard mode retries 5xx, throttling, resets and timeouts, with backoff under 8 s.
    maxAttempts: limits.attempts,
    retryMode: 'standard',
  };
  // One client: its sockets fail an attempt after the idle time, but not while a download waits on
  // its reader (pg_restore building an index) or an upload on its producer.
  const endpointLabel = target.endpoint ? maskUri(target.endpoint) : `https://s3.${region}.amazonaws.com`;
  const agents = timedAgents(limits, endpointLabel);
  const client = new S3Client({
    ...base,
    requestHandler: { httpAgent: agents.http, httpsAgent: agents.https, connectionTimeout: limits.connectMs },
  });
  return new S3Storage(client, client, {
    bucket: uri.bucket,
    prefix,
    display: `${uri.scheme}://${uri.bucket}`,
    endpointLabel,
    agents,
    limits,
    region,
    aws: target.aws,
    partSize: settings.partSizeBytes,
    concurrency: settings.concurrency,
    storageClass: uri.params.storageClass,
    createBucket: uri.params.createBucket,
    secrets: [secretKey ?? ''],
  });
};
