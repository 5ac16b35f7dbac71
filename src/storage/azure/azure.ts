import { Readable } from 'node:stream';
import type { BlockBlobClient, ContainerClient, Metadata } from '@azure/storage-blob';
import { StorageError, UsageError, type DbBackupError } from '../../errors.js';
import { DEFAULT_CONCURRENCY, DEFAULT_PART_SIZE, type CloudSettings, type OpenCloudStore } from '../cloud.js';
import { alreadyExists, onceUntilDone, storageFailure, type FailureContext } from '../failure.js';
import type { ByteRange, IncompleteUpload, ObjectInfo, PutOptions, Storage } from '../storage.js';
import { requestLimits, timedAgents, type Agents, type RequestLimits } from '../transport.js';
import { connectionStringEndpoint, resolveAzureAuth, secretsOf, serviceClient } from './auth.js';
import { isOwnBlockId, stageBlocks } from './blocks.js';
import { azureClassifier, errorCode, statusOf } from './errors.js';

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

/** A container (plus a prefix inside it) as a Storage; every object is a block blob. */
export class AzureStorage implements Storage {
  readonly location: string;
  /** Creates the container if missing, once per store (?create_bucket=true). */
  private readonly ensureContainer = onceUntilDone(
    async () => void (await this.container.createIfNotExists()),
  );
  private readonly failures: FailureContext;

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
    this.failures = {
      classifier: azureClassifier(container.containerName, o.endpoint),
      agents: o.agents,
      limits: o.limits ?? requestLimits(),
      secrets: o.secrets,
    };
  }

  private blob(key: string): BlockBlobClient {
    return this.container.getBlockBlobClient(this.prefix + key);
  }

  async put(key: string, body: Readable, options: PutOptions = {}): Promise<ObjectInfo> {
    const blob = this.blob(key);
    try {
      if (this.o.createContainer) await this.ensureContainer();
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
        throw alreadyExists(`${this.location}${key}`);
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
      // A range starting at 0 of an empty blob: Azure answers 416; the honest answer is no bytes
      // (as S3 and GCS give it: the storage contract checks all three).
      if (statusOf(err) === 416 && range?.start === 0) return Readable.from([]);
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
  private wrap(err: unknown, action: string, key: string): DbBackupError {
    return storageFailure(err, action, `${this.location}${key}`, this.failures);
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
