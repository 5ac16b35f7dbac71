import type { CloudUri } from './cloud-uri.js';
import type { Storage } from './storage.js';

/** Cloud settings from flags and environment; URI query parameters take precedence where both exist. */
export interface CloudSettings {
  /** Multipart part / block size for uploads; adapted upwards for huge streams (see partSizeFor). */
  partSizeBytes?: number;
  /** Parts uploaded in parallel. */
  concurrency?: number;
  accessKey?: string;
  secretKey?: string;
  region?: string;
  endpoint?: string;
  /** `--cloud-timeout`: seconds a request may wait without a byte moving (see transport.ts). */
  timeoutSeconds?: number;
}

export const DEFAULT_PART_SIZE = 8 * 1024 * 1024;
export const DEFAULT_CONCURRENCY = 4;

/**
 * The size of part `n` (1-based) of a stream of unknown length: `base` for the first tenth of the
 * provider's part limit, then doubling every tenth. Small backups use small parts (bounded memory:
 * part size × concurrency), and a stream still fits the limit up to base × limit/10 × 1023 bytes:
 * with 8 MiB parts and S3's 10,000 parts that is 7.8 TiB, beyond S3's 5 TiB object limit.
 */
export function partSizeForPart(n: number, base: number, maxParts: number): number {
  const tier = Math.min(Math.floor((n - 1) / Math.max(1, Math.floor(maxParts / 10))), 9);
  return base * 2 ** tier;
}

/** Total bytes a stream can reach before `maxParts` parts are used up. */
export function capacityOf(base: number, maxParts: number): number {
  let total = 0;
  for (let n = 1; n <= maxParts; n++) total += partSizeForPart(n, base, maxParts);
  return total;
}

/** What each cloud backend module exports: open a store rooted at `prefix` ('' or ending in '/'). */
export type OpenCloudStore = (uri: CloudUri, prefix: string, settings: CloudSettings) => Promise<Storage>;
