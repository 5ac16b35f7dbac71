import type { Readable } from 'node:stream';

/** What a listing or a stat returns about one stored object. Keys are '/'-separated and relative to the store. */
export interface ObjectInfo {
  key: string;
  size: number;
  modified: Date;
  /** Provider metadata (S3 user metadata, Azure metadata, GCS metadata). Empty on the local filesystem. */
  metadata?: Record<string, string>;
}

export interface PutOptions {
  /** Small key/value facts stored with the object where the backend supports it. */
  metadata?: Record<string, string>;
  /** Refuse to replace an existing object. */
  noOverwrite?: boolean;
}

/**
 * An upload that was started and never finished (a killed backup): bytes the provider keeps, and
 * may bill, that no listing of objects shows. S3: a multipart upload; Azure: a blob with only
 * uncommitted blocks.
 */
export interface IncompleteUpload {
  /** The object it would have created, relative to the store. */
  key: string;
  /** The provider's handle: the S3 upload id; the blob name on Azure. */
  id: string;
  started: Date | undefined;
  /** Bytes uploaded so far, where the provider or dbbackup's own record tells. */
  size: number | undefined;
  /** dbbackup provably started it (its own record of the upload, or its own block ids). */
  ours: boolean;
  /** The store key of dbbackup's record of the upload, removed with it. */
  record?: string;
}

export interface ByteRange {
  /** First byte, inclusive. */
  start: number;
  /** Last byte, inclusive; omitted means to the end. */
  end?: number;
}

/** A file being written under a temporary name (Storage.createFile). */
export interface FileDraft {
  /** Open for reading and writing: a program writes it as its stdout, this process reads it back. */
  readonly fd: number;
  /** The file holds `bytes` bytes so far: they may be synced to disk in the background. */
  written(bytes: number): void;
  /** Make it durable and put it under its key (never replacing an object, as put with noOverwrite). */
  commit(): Promise<ObjectInfo>;
  /** Close and remove it; never throws. */
  discard(): Promise<void>;
}

/**
 * One small interface for every place a backup can live: a directory, a bucket, a container.
 * Writes are atomic: an object appears under its key only once `put` resolves, and a failed or
 * aborted `put` leaves nothing under that key.
 */
export interface Storage {
  /** A human-readable location with secrets masked, e.g. `/root/db_backups` or `s3://bucket/prefix`. */
  readonly location: string;

  /** Consume `body` and store it under `key`. Rejects (and stores nothing) if `body` errors. */
  put(key: string, body: Readable, options?: PutOptions): Promise<ObjectInfo>;

  /** A stream of the object's bytes, optionally a byte range. Rejects with StorageError if missing. */
  get(key: string, range?: ByteRange): Promise<Readable>;

  /** Facts about one object, or undefined if it does not exist. */
  stat(key: string): Promise<ObjectInfo | undefined>;

  /** Every object whose key starts with `prefix`, paginated under the hood; order is unspecified. */
  list(prefix?: string): AsyncIterable<ObjectInfo>;

  /** Remove an object. Removing a missing object is not an error. */
  delete(key: string): Promise<void>;

  /**
   * A file to be stored under `key`, for a program to write itself (its stdout): no byte of it
   * passes through this process. Directories only; it appears under its key on `commit`, and
   * nothing does on `discard` or a crash (a temporary file until then).
   */
  createFile?(key: string, options?: PutOptions): Promise<FileDraft>;

  /**
   * The object's path on the local filesystem when the backend is a directory, so tools that need
   * a seekable file (pg_restore --jobs) or can read a file themselves get it without a copy.
   */
  localPath?(key: string): string;

  /**
   * Uploads under `prefix` that were started and never finished (none on a directory: an
   * interrupted write there is a visible temporary file). Optional: GCS cannot list unfinished
   * resumable sessions (they expire by themselves after a week and hold no visible object).
   */
  listIncompleteUploads?(prefix?: string): AsyncIterable<IncompleteUpload>;

  /** Discard one such upload and dbbackup's record of it; one already gone is not an error. */
  abortIncompleteUpload?(upload: IncompleteUpload): Promise<void>;
}

export async function putBuffer(
  storage: Storage,
  key: string,
  data: string | Buffer,
  options?: PutOptions,
): Promise<ObjectInfo> {
  const { Readable } = await import('node:stream');
  return storage.put(key, Readable.from([Buffer.from(data)]), options);
}

export async function readAll(storage: Storage, key: string, maxBytes = 16 * 1024 * 1024): Promise<Buffer> {
  const stream = await storage.get(key);
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
    total += buf.length;
    if (total > maxBytes) {
      stream.destroy();
      throw new RangeError(`${key} is larger than ${maxBytes} bytes`);
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks);
}
