import { S3Client } from '@aws-sdk/client-s3';
import { UsageError } from '../../errors.js';
import { maskUri, type CloudUri } from '../cloud-uri.js';
import type { CloudSettings } from '../cloud.js';

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
export async function defaultRegion(): Promise<string> {
  const probe = new S3Client({});
  try {
    return await probe.config.region();
  } catch {
    return 'us-east-1';
  } finally {
    probe.destroy();
  }
}
