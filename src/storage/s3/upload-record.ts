import { randomBytes } from 'node:crypto';

/**
 * dbbackup's own note of a multipart upload it started, kept beside the target name until the
 * upload is completed or aborted: `<dir>.dbbackup-upload-<12 hex>-<name>.upload.json` (a name no
 * listing takes for a backup or a sidecar). A killed backup
 * leaves it, so the orphaned upload can be found and aborted even on servers that cannot list
 * multipart uploads (fauxqs, s3rver), and it proves the upload is dbbackup's. It deliberately does
 * not carry the temporary-file marker: pruning temporary files must not lose the only pointer to
 * the parts; `cleanup --prune-incomplete` removes it together with the upload it names.
 */
export interface UploadRecord {
  /** The object the upload creates, relative to the store. */
  key: string;
  uploadId: string;
  started: string;
  /** Bytes in the parts finished so far (updated as parts finish). */
  bytes: number;
}

const RECORD_MARKER = '.dbbackup-upload-';
const RECORD_SUFFIX = '.upload.json';
const RECORD_NAME = /^\.dbbackup-upload-[0-9a-f]{12}-.+\.upload\.json$/;

export function newRecordKey(key: string): string {
  const slash = key.lastIndexOf('/');
  return `${key.slice(0, slash + 1)}${RECORD_MARKER}${randomBytes(6).toString('hex')}-${key.slice(slash + 1)}${RECORD_SUFFIX}`;
}

export function isRecordKey(key: string): boolean {
  return RECORD_NAME.test(key.slice(key.lastIndexOf('/') + 1));
}

export function parseRecord(text: string): UploadRecord | undefined {
  try {
    const r = JSON.parse(text) as Partial<UploadRecord>;
    if (
      typeof r.key === 'string' &&
      typeof r.uploadId === 'string' &&
      typeof r.started === 'string' &&
      typeof r.bytes === 'number'
    )
      return { key: r.key, uploadId: r.uploadId, started: r.started, bytes: r.bytes };
  } catch {
    // not ours after all
  }
  return undefined;
}

/**
 * Keeps a record up to date without slowing the upload: at most one write in flight, the latest
 * byte count wins, and `finish` waits for the last one before the record is removed.
 */
export class RecordWriter {
  private pending: Promise<void> = Promise.resolve();
  private busy = false;
  private next: number | undefined;

  constructor(private readonly write: (bytes: number) => Promise<void>) {}

  update(bytes: number): void {
    this.next = bytes;
    if (this.busy) return;
    this.busy = true;
    this.pending = (async () => {
      while (this.next !== undefined) {
        const n = this.next;
        this.next = undefined;
        await this.write(n).catch(() => undefined);
      }
      this.busy = false;
    })();
  }

  async finish(): Promise<void> {
    this.next = undefined;
    await this.pending;
  }
}
