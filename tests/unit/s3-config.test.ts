import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { parseCloudUri } from '../../src/storage/cloud-uri.js';
import { s3Target } from '../../src/storage/s3/config.js';
import { describeS3Error, isTransient } from '../../src/storage/s3/errors.js';
import { decodeMetadataValue, encodeMetadataValue } from '../../src/storage/s3/parts.js';

const target = (uri: string, env: NodeJS.ProcessEnv = {}, settings = {}) =>
  s3Target(parseCloudUri(uri), settings, env);

describe('s3Target: endpoint, region, path style and checksums from URI, flags and environment', () => {
  it('s3:// is AWS: SDK endpoint, virtual hosts, default checksums; region from URI, flag, then env', () => {
    expect(target('s3://b/p')).toEqual({
      endpoint: undefined,
      region: undefined,
      forcePathStyle: false,
      aws: true,
      checksums: 'WHEN_SUPPORTED',
    });
    expect(target('s3://b/p?region=eu-west-1', { AWS_REGION: 'us-west-2' }).region).toBe('eu-west-1');
    expect(target('s3://b/p', { AWS_REGION: 'us-west-2' }, { region: 'ap-south-1' }).region).toBe(
      'ap-south-1',
    );
    expect(target('s3://b/p', { AWS_REGION: 'us-west-2' }).region).toBe('us-west-2');
    expect(target('s3://b.s3.eu-central-1.amazonaws.com/p').region).toBe('eu-central-1');
  });

  it('s3:// with a non-AWS endpoint: path style and WHEN_REQUIRED checksums, unless overridden', () => {
    const t = target('s3://b/p?endpoint=http%3A%2F%2F127.0.0.1%3A9000');
    expect(t).toMatchObject({
      endpoint: 'http://127.0.0.1:9000',
      forcePathStyle: true,
      aws: false,
      checksums: 'WHEN_REQUIRED',
    });
    expect(target('s3://b/?endpoint=https://r2.example&path_style=false').forcePathStyle).toBe(false);
    expect(
      target('s3://b/?endpoint=https://x.example', { DBBACKUP_S3_CHECKSUMS: 'when_supported' }).checksums,
    ).toBe('WHEN_SUPPORTED');
    expect(() => target('s3://b/', { DBBACKUP_S3_CHECKSUMS: 'crc' })).toThrow(UsageError);
    expect(target('s3://b/?endpoint=https://s3.us-east-2.amazonaws.com').aws).toBe(true);
  });

  it('minio:// needs an endpoint from the URI, the flag or DBBACKUP_CLOUD_ENDPOINT (via settings)', () => {
    expect(() => target('minio://b/p')).toThrow(/minio:\/\/ needs the server's address/);
    expect(target('minio://b/p', {}, { endpoint: 'http://m:9000' })).toMatchObject({
      endpoint: 'http://m:9000',
      forcePathStyle: true,
    });
    expect(() => target('minio://b/p?endpoint=m:9000')).toThrow(/Invalid S3 endpoint/);
    expect(() => target('minio://b/p?endpoint=http://a b')).toThrow(/Invalid S3 endpoint/);
    expect(() => target('minio://b/p?endpoint=ftp://m')).toThrow(/Invalid S3 endpoint/);
  });

  it('b2:// derives the endpoint from the region, or takes ?endpoint=', () => {
    expect(target('b2://b/p?region=us-west-004')).toMatchObject({
      endpoint: 'https://s3.us-west-004.backblazeb2.com',
      region: 'us-west-004',
      checksums: 'WHEN_REQUIRED',
    });
    expect(target('b2://b/p?endpoint=http://127.0.0.1:1').endpoint).toBe('http://127.0.0.1:1');
    expect(() => target('b2://b/p')).toThrow(/needs a region or an endpoint/);
    expect(target('b2://b/p?endpoint=https://s3.eu-central-003.backblazeb2.com').region).toBe(
      'eu-central-003',
    );
  });
});

describe('S3 error descriptions', () => {
  const sdk = (name: string, message: string, status?: number) =>
    Object.assign(new Error(message), { name, $metadata: { httpStatusCode: status } });

  it('one line with the cause and a hint for the usual mistakes', () => {
    expect(
      describeS3Error(sdk('NoSuchBucket', 'The specified bucket does not exist', 404), 'bk', 'e'),
    ).toEqual({
      text: 'NoSuchBucket: The specified bucket does not exist (HTTP 404)',
      hint: 'The bucket "bk" does not exist: create it or add ?create_bucket=true to the URI.',
    });
    for (const name of ['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch'])
      expect(describeS3Error(sdk(name, 'x', 403), 'b', 'e').hint).toMatch(/credentials/);
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9\nmore'), {
      code: 'ECONNREFUSED',
    });
    expect(describeS3Error(refused, 'b', 'http://127.0.0.1:9')).toEqual({
      text: 'connect ECONNREFUSED 127.0.0.1:9',
      hint: expect.stringContaining('S3 endpoint http://127.0.0.1:9') as unknown,
    });
    expect(describeS3Error(sdk('NotFound', 'UnknownError', 404), 'b', 'e').text).toBe('NotFound (HTTP 404)');
    // A HEAD answered 403 has no body: the SDK says only "Unknown".
    expect(describeS3Error(sdk('Unknown', 'Unknown', 403), 'b', 'e')).toEqual({
      text: 'access denied (HTTP 403)',
      hint: expect.stringMatching(/^Check the credentials/) as unknown,
    });
    expect(describeS3Error(sdk('Error', 'XML parse error', 413), 'b', 'e').hint).toMatch(/--cloud-part-size/);
  });

  it('classifies 5xx, throttling and connection resets as transient, client errors as permanent', () => {
    expect(isTransient(sdk('SlowDown', 'x', 503))).toBe(true);
    expect(isTransient(sdk('InternalError', 'x', 500))).toBe(true);
    expect(isTransient(Object.assign(new Error('reset'), { code: 'ECONNRESET' }))).toBe(true);
    expect(isTransient(sdk('TimeoutError', 'x'))).toBe(true);
    expect(isTransient(sdk('AccessDenied', 'x', 403))).toBe(false);
    expect(isTransient(sdk('NoSuchUpload', 'x', 404))).toBe(false);
  });
});

describe('S3 user metadata values', () => {
  it('ASCII travels as is; anything else RFC 2047-encoded, and decodes back', () => {
    expect(encodeMetadataValue('shop_1')).toBe('shop_1');
    for (const v of ['café', 'データ', 'tab\there', ''])
      expect(decodeMetadataValue(encodeMetadataValue(v))).toBe(v);
    expect(encodeMetadataValue('café')).toMatch(/^=\?UTF-8\?B\?[A-Za-z0-9+/=]+\?=$/);
  });
});
