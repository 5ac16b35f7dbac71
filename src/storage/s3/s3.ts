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
import { StorageError, UsageError, type DbBackupError } from '../../errors.js';
import { maskUri } from '../cloud-uri.js';
import { DEFAULT_CONCURRENCY, type OpenCloudStore } from '../cloud.js';
import { alreadyExists, onceUntilDone, storageFailure, type FailureContext } from '../failure.js';
import { withRetries } from '../retry.js';
import {
  readAll,
  type ByteRange,
  type IncompleteUpload,
  type ObjectInfo,
  type PutOptions,
  type Storage,
} from '../storage.js';
import {
  cleanupRequests,
  requestLimits,
  timedAgents,
  type Agents,
  type RequestLimits,
} from '../transport.js';
import { defaultRegion, s3Target } from './config.js';
import { httpStatus, isNotFound, isTransient, s3Classifier, s3ErrorName } from './errors.js';
import {
  PartReader,
  S3_MAX_PARTS,
  decodeMetadataValue,
  encodeMetadataValue,
  mapValues,
  s3PartSize,
} from './parts.js';
import { RecordWriter, isRecordKey, newRecordKey, parseRecord, type UploadRecord } from './upload-record.js';

/** Our own attempts per part on top of the SDK's: the part's bytes are in memory, so re-sending is free. */
const PART_ATTEMPTS = 3;

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
  /** Creates the bucket if missing, once per store (?create_bucket=true). */
  private readonly ensureBucket = onceUntilDone(() => this.createBucketIfMissing());
  private readonly failures: FailureContext;
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
    this.failures = {
      classifier: s3Classifier(o.bucket, o.endpointLabel),
      agents: o.agents,
      limits: o.limits,
      secrets: o.secrets,
    };
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
    return withRetries(
      async () => {
        const { ETag } = await this.client.send(new UploadPartCommand(input), { abortSignal: signal });
        if (!ETag) throw new StorageError(`The server returned no ETag for part ${input.PartNumber}`);
        return ETag;
      },
      { attempts: PART_ATTEMPTS, transient: isTransient, signal, limits: this.o.limits ?? requestLimits() },
    );
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
    return alreadyExists(this.where(key));
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
    return storageFailure(err, action, key === undefined ? this.location : this.where(key), this.failures);
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
