import { EventEmitter } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  Storage as GcsClient,
  RETRYABLE_ERR_FN_DEFAULT,
  type ApiError,
  type Bucket,
  type File,
  type FileMetadata,
  type StorageOptions,
} from '@google-cloud/storage';
import { StorageError, type DbBackupError } from '../../errors.js';
import type { OpenCloudStore } from '../cloud.js';
import {
  alreadyExists,
  describeFailure,
  onceUntilDone,
  storageFailure,
  timedOut,
  type FailureContext,
} from '../failure.js';
import type { ByteRange, ObjectInfo, PutOptions, Storage } from '../storage.js';
import {
  MAX_BACKOFF_MS,
  requestLimits,
  timedAgents,
  worstCaseMs,
  type Agents,
  type RequestLimits,
} from '../transport.js';
import { authFor, checkCredentialsFile, gcsTarget, type GcsTarget } from './config.js';
import { gcsClassifier, httpStatus, isBrokenUpload, isBucketMissing } from './errors.js';

// A download through SDK 8.4 stacks 12 'error' listeners on one internal stream (retry-request,
// teeny-request, the SDK's own pipeline: a fixed number, not a leak), so Node would print
// "MaxListenersExceededWarning: Possible EventEmitter memory leak" on every verify or restore.
// This module loads only for gs:// URIs; the threshold is raised just above that fixed count.
EventEmitter.defaultMaxListeners = Math.max(EventEmitter.defaultMaxListeners, 16);

// ---- metadata -----------------------------------------------------------------------------------

/** GCS custom metadata is JSON (any UTF-8); values may come back as numbers or booleans. */
function stringMetadata(meta: FileMetadata['metadata']): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(meta ?? {})) if (v !== null && v !== undefined) out[k] = String(v);
  return out;
}

function infoOf(key: string, md: FileMetadata): ObjectInfo {
  return {
    key,
    size: Number(md.size ?? 0),
    modified: new Date(md.updated ?? md.timeCreated ?? 0),
    metadata: stringMetadata(md.metadata),
  };
}

type RequestOptions = ReturnType<File['interceptors'][number]['request']>;

/** Counts the bytes passing through, so a short upload is caught by comparing with the stored size. */
class ByteCounter extends Transform {
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    cb(null, chunk);
  }
}

// ---- the store -----------------------------------------------------------------------------------

export interface GcsStorageOptions {
  /** '' or ending in '/'. */
  prefix: string;
  /** As written: gs or gcs. */
  scheme: string;
  target: GcsTarget;
  /** The last network error the SDK saw (filled in by openGcs' retry hook). */
  retried?: { last?: unknown };
  /** The same bucket through a client that never retries: for single-request uploads. */
  streamBucket?: Bucket;
  /** The timed sockets behind every request but uploads (see transport.ts). */
  agents?: Agents;
  limits?: RequestLimits;
}

/** The server ended an upload before all of the body had been sent. */
class TruncatedUpload extends StorageError {}

/** A bucket prefix as a Storage: one resumable upload per object, streamed. */
export class GcsStorage implements Storage {
  readonly location: string;
  private readonly prefix: string;
  private readonly target: GcsTarget;
  private readonly retried: { last?: unknown };
  private readonly streamBucket: Bucket;
  /** Creates the bucket once per store (?create_bucket=true); a 409 is someone else's create. */
  private readonly ensureBucket = onceUntilDone(() => this.createBucket());
  private readonly failures: FailureContext;
  private readonly agents: Agents | undefined;
  private readonly limits: RequestLimits;

  constructor(
    readonly bucket: Bucket,
    o: GcsStorageOptions,
  ) {
    this.prefix = o.prefix;
    this.target = o.target;
    this.retried = o.retried ?? {};
    this.streamBucket = o.streamBucket ?? bucket;
    this.agents = o.agents;
    this.limits = o.limits ?? requestLimits();
    this.location = `${o.scheme}://${bucket.name}${o.prefix ? `/${o.prefix.replace(/\/+$/, '')}` : ''}`;
    this.failures = {
      classifier: gcsClassifier(bucket.name, o.target.endpointLabel),
      agents: o.agents,
      limits: this.limits,
    };
  }

  private where(key: string): string {
    return `${this.location}/${key}`;
  }

  private file(key: string): File {
    return this.bucket.file(this.prefix + key);
  }

  /**
   * The session is opened first (a POST without data), so a missing bucket is reported, and with
   * create_bucket created, before any byte of `body` is consumed. The data then goes in ONE streamed
   * PUT (or opt-in chunks). A body error destroys the write stream, which aborts the PUT before
   * the upload finalizes, and the session is cancelled: nothing ever appears under the name.
   */
  async put(key: string, body: Readable, options: PutOptions = {}): Promise<ObjectInfo> {
    const file = this.file(key);
    // The body may fail while the session is still being opened (nothing reads it yet): keep that error
    // from being an uncaught exception; pipeline() below finds it on the destroyed body and rejects with it.
    body.on('error', () => undefined);
    // One streamed request cannot be retried (its bytes are gone); a retry would only send a status
    // query, which the emulator takes as the final, empty request and finalizes: a 0-byte object
    // under the name after a failed dump. Chunked uploads keep the chunk in memory and may retry.
    const out = this.target.chunkSize ? file : this.streamBucket.file(this.prefix + key);
    let session: string | undefined;
    const counter = new ByteCounter();
    this.retried.last = undefined;
    // The upload's own connections: the SDK does not abort its PUT when the write stream is
    // destroyed (the request body just stops), so a failed put destroys these sockets itself;
    // otherwise the half-sent request would stay open and keep the process alive.
    const agents = timedAgents(this.limits, this.target.endpointLabel);
    const agent = (url: URL): http.Agent => agents.for(url);
    // Interceptors become the upload's request options (gaxios/node-fetch take `agent`; the
    // interceptor type, shared with teeny-request, does not declare it).
    for (const f of new Set([file, out]))
      f.interceptors.push({ request: (reqOpts) => Object.assign(reqOpts as RequestOptions, { agent }) });
    try {
      // The emulator ignores ifGenerationMatch; real GCS enforces it at finalize (412 below).
      if (options.noOverwrite && (await this.stat(key))) throw this.exists(key);
      const upload = {
        metadata: {
          contentType: 'application/octet-stream',
          metadata: options.metadata ?? {},
          ...(this.target.storageClass ? { storageClass: this.target.storageClass } : {}),
        },
        // Object generation 0 = "does not exist yet": two writers of one name cannot both win.
        preconditionOpts: options.noOverwrite ? { ifGenerationMatch: 0 } : undefined,
      };
      session = await this.openSession(file, upload);
      const ws = out.createWriteStream({
        ...upload,
        uri: session,
        // 0, not undefined: skips the SDK's status query, a PUT that the emulator would finalize.
        offset: 0,
        resumable: true,
        // Checked after the upload against the server's CRC32C (the SDK deletes a mismatching object).
        validation: 'crc32c',
        chunkSize: this.target.chunkSize,
      });
      // A server that answers a chunk with "finished" while the body is still flowing (the firebase
      // emulator does) would leave the SDK waiting forever: fail instead of hanging.
      let bodyDone = false;
      counter.once('finish', () => (bodyDone = true));
      ws.on('response', (res: { status?: number }) => {
        if (!bodyDone && (res.status === 200 || res.status === 201))
          ws.destroy(this.truncated(key, undefined, counter.bytes));
      });
      await pipeline(body, counter, ws);
    } catch (err) {
      body.destroy();
      agents.destroy();
      const late = timedOut(err, 'upload', this.where(key), agents, this.limits);
      if (session) await cancelSession(session);
      if (late) throw late;
      if (options.noOverwrite && httpStatus(err) === 412) throw this.exists(key);
      if (isBrokenUpload(err)) throw this.interrupted(key, err);
      if (err instanceof TruncatedUpload) await out.delete({ ignoreNotFound: true }).catch(() => undefined);
      throw this.wrap(err, 'upload', key);
    }
    agents.destroy();
    const md = out.metadata;
    if (Number(md.size) !== counter.bytes) {
      await out.delete({ ignoreNotFound: true }).catch(() => undefined);
      throw this.truncated(key, md.size, counter.bytes);
    }
    return infoOf(key, md);
  }

  /** The server finalized fewer bytes than were sent: the object is cut short (and is removed). */
  private truncated(key: string, stored: number | string | undefined, sent: number): TruncatedUpload {
    return new TruncatedUpload(
      `${this.where(key)} was finalized by the server with ${stored ?? 'fewer'} bytes after ${sent} were sent`,
      {
        hint: this.target.chunkSize
          ? 'This server does not support chunked uploads (the firebase emulator does not): remove ?chunk_size= / --cloud-part-size.'
          : 'The server stores less than it accepts; check the endpoint.',
      },
    );
  }

  private async openSession(
    file: File,
    upload: { metadata: FileMetadata; preconditionOpts?: { ifGenerationMatch: number } },
  ): Promise<string> {
    try {
      return (await file.createResumableUpload(upload))[0];
    } catch (err) {
      if (!this.target.createBucket || !isBucketMissing(err)) throw err;
    }
    await this.ensureBucket();
    return (await file.createResumableUpload(upload))[0];
  }

  private async createBucket(): Promise<void> {
    try {
      await this.bucket.create(this.target.storageClass ? { storageClass: this.target.storageClass } : {});
    } catch (err) {
      // 409: someone else created it in between, which is what we wanted.
      if (httpStatus(err) !== 409) throw this.wrap(err, 'create bucket');
    }
  }

  /**
   * The connection broke mid-request; the SDK retried, found the server short of the bytes it had
   * streamed (they are not kept: memory stays bounded) and gave up. Report the network cause.
   */
  private interrupted(key: string, err: unknown): StorageError {
    const last = this.retried.last;
    const d = last === undefined ? undefined : describeFailure(this.failures.classifier, last);
    return new StorageError(
      `Could not upload ${this.where(key)}: the connection broke mid-upload${d ? ` (${d.text})` : ''}, and a streamed upload cannot resume`,
      {
        hint:
          d?.hint ??
          `Check the network and the GCS endpoint ${this.target.endpointLabel}, then run the backup again.`,
        cause: last ?? err,
      },
    );
  }

  private exists(key: string): StorageError {
    return alreadyExists(this.where(key));
  }

  async get(key: string, range?: ByteRange): Promise<Readable> {
    // A range has no whole-object checksum to compare with, so validation is off for ranges only.
    const stream = this.file(key).createReadStream(
      range ? { start: range.start, end: range.end, validation: false } : { validation: 'crc32c' },
    );
    try {
      await new Promise<void>((resolve, reject) => {
        // The request starts on the first read; wait for its status so a missing object rejects here.
        stream.on('response', (res: { statusCode?: number }) => {
          if ((res.statusCode ?? 0) < 300) resolve();
        });
        stream.once('error', reject);
        stream.pause();
        stream.read(0);
      });
    } catch (err) {
      stream.destroy();
      // A range from byte 0 of an empty object: the honest answer is no bytes.
      if (httpStatus(err) === 416 && range?.start === 0) return Readable.from([]);
      throw this.wrap(err, 'read', key);
    }
    return stream;
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    try {
      const [md] = await this.file(key).getMetadata();
      return infoOf(key, md);
    } catch (err) {
      // No bucket, no object: with create_bucket the first put creates it, so that is not an error.
      if (httpStatus(err) === 404 && (this.target.createBucket || !isBucketMissing(err))) return undefined;
      throw this.wrap(err, 'stat', key);
    }
  }

  async *list(prefix = ''): AsyncIterable<ObjectInfo> {
    let pageToken: string | undefined;
    do {
      let files: File[];
      try {
        const [page, next] = await this.bucket.getFiles({
          prefix: this.prefix + prefix,
          autoPaginate: false,
          maxResults: 1000,
          pageToken,
        });
        files = page;
        pageToken = (next as { pageToken?: string } | null)?.pageToken;
      } catch (err) {
        throw this.wrap(err, 'list', prefix || undefined);
      }
      for (const f of files) {
        // Names ending in '/' are "folder" placeholders that consoles create, not objects.
        if (!f.name.startsWith(this.prefix) || f.name.endsWith('/')) continue;
        yield infoOf(f.name.slice(this.prefix.length), f.metadata);
      }
    } while (pageToken);
  }

  async delete(key: string): Promise<void> {
    try {
      await this.file(key).delete({ ignoreNotFound: true });
    } catch (err) {
      throw this.wrap(err, 'delete', key);
    }
  }

  private wrap(err: unknown, action: string, key?: string): DbBackupError {
    return storageFailure(err, action, key === undefined ? this.location : this.where(key), this.failures);
  }
}

/**
 * Best effort: GCS drops an unfinished session after a week anyway, and an aborted PUT never
 * finalizes. The session URI is its own credential, so no auth header is needed.
 */
async function cancelSession(uri: string): Promise<void> {
  await fetch(uri, { method: 'DELETE', signal: AbortSignal.timeout(5_000) }).catch(() => undefined);
}

export const openGcs: OpenCloudStore = async (uri, prefix, settings) => {
  const target = gcsTarget(uri, settings);
  const key = target.keyFilename ? await checkCredentialsFile(target.keyFilename) : undefined;
  const retried: { last?: unknown } = {};
  const limits = requestLimits(settings.timeoutSeconds);
  const agents = timedAgents(limits, target.endpointLabel);
  // The SDK's JSON-API requests go through teeny-request, which ignores both `timeout` (node-fetch 3
  // dropped it) and `agent`; without its keep-alive pool ("forever") it uses Node's global agents.
  // In this process only GCS uses those (S3 and Azure bring their own), so they become timed ones.
  http.globalAgent = agents.http;
  https.globalAgent = agents.https;
  const options: StorageOptions = {
    projectId: target.projectId ?? (typeof key?.project_id === 'string' ? key.project_id : undefined),
    ...(key && target.keyFilename ? authFor(target.keyFilename, key) : {}),
    userAgent: 'dbbackup',
    retryOptions: {
      autoRetry: true,
      maxRetries: limits.attempts - 1,
      retryDelayMultiplier: 2,
      maxRetryDelay: MAX_BACKOFF_MS / 1000,
      totalTimeout: Math.ceil(worstCaseMs(limits) / 1000),
      // The SDK's own decision, plus a note of what it retried: when an upload finally fails with
      // "offset is lower…", that note is the real cause (a reset connection, a dead endpoint).
      retryableErrorFn: (err: ApiError) => {
        const retry = RETRYABLE_ERR_FN_DEFAULT(err);
        // Network errors carry an errno string; HTTP statuses of retried answers count too.
        if (retry || typeof err.code === 'string') retried.last = err;
        return retry;
      },
    },
  };
  if (target.endpoint) options.apiEndpoint = target.endpoint;
  const client = new GcsClient(options);
  const streamClient = new GcsClient({
    ...options,
    retryOptions: { ...options.retryOptions, autoRetry: false },
  });
  // With STORAGE_EMULATOR_HOST also set, the SDK would send JSON-API calls there and uploads to
  // apiEndpoint; an explicit endpoint wins for both.
  for (const c of [client, streamClient]) {
    if (target.endpoint) c.baseUrl = `${target.endpoint}/storage/v1`;
    c.interceptors.push({
      request: (reqOpts) => Object.assign(reqOpts as RequestOptions, { forever: false }),
    });
  }
  return new GcsStorage(client.bucket(uri.bucket), {
    agents,
    limits,
    prefix,
    scheme: uri.scheme,
    target,
    retried,
    streamBucket: streamClient.bucket(uri.bucket),
  });
};
