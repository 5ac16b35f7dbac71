import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { parseCloudUri } from '../../src/storage/cloud-uri.js';
import type { CloudSettings } from '../../src/storage/cloud.js';
import { gcsTarget } from '../../src/storage/gcs/config.js';
import { describeGcsError, httpStatus } from '../../src/storage/gcs/errors.js';

const target = (uri: string, env: NodeJS.ProcessEnv = {}, settings: CloudSettings = {}) =>
  gcsTarget(parseCloudUri(uri), settings, env);

/** Shaped like the SDK's ApiError: a numeric `code` holding the HTTP status. */
function apiError(code: number, message: string): Error {
  return Object.assign(new Error(message), { code });
}

describe('gcsTarget: endpoint, credentials, chunking and storage class from URI, flags and environment', () => {
  it('plain gs://: Google itself, ADC, one streamed request', () => {
    expect(target('gs://b/p/')).toEqual({
      endpoint: undefined,
      endpointLabel: 'https://storage.googleapis.com',
      keyFilename: undefined,
      projectId: undefined,
      chunkSize: undefined,
      storageClass: undefined,
      createBucket: false,
    });
  });

  it('credentials, project and create_bucket come from the query', () => {
    expect(target('gcs://b/?credentials=/etc/sa.json&project=acme&create_bucket=true')).toMatchObject({
      keyFilename: '/etc/sa.json',
      projectId: 'acme',
      createBucket: true,
    });
  });

  it('?endpoint= wins over --cloud-endpoint; STORAGE_EMULATOR_HOST only labels messages', () => {
    const env = { STORAGE_EMULATOR_HOST: 'http://127.0.0.1:9199' };
    expect(target('gs://b/', env)).toMatchObject({
      endpoint: undefined,
      endpointLabel: 'http://127.0.0.1:9199',
    });
    expect(
      target('gs://b/?endpoint=http%3A%2F%2F127.0.0.1%3A1%2F', env, { endpoint: 'http://x:2' }),
    ).toMatchObject({ endpoint: 'http://127.0.0.1:1', endpointLabel: 'http://127.0.0.1:1/' });
    expect(target('gs://b/', {}, { endpoint: 'https://gcs.example' }).endpoint).toBe('https://gcs.example');
  });

  it('rejects an endpoint or emulator host without a scheme (the SDK would speak TLS to it)', () => {
    expect(() => target('gs://b/?endpoint=127.0.0.1:9199')).toThrow(UsageError);
    expect(() => target('gs://b/', { STORAGE_EMULATOR_HOST: '127.0.0.1:9199' })).toThrow(/has no scheme/);
    // An explicit endpoint makes the variable irrelevant.
    expect(() =>
      target('gs://b/?endpoint=http%3A%2F%2Fh%3A1', { STORAGE_EMULATOR_HOST: '127.0.0.1:9199' }),
    ).not.toThrow();
  });

  it('chunked uploads are opt-in: ?chunk_size= (bytes, k, M, MiB) or --cloud-part-size, multiples of 256 KiB', () => {
    expect(target('gs://b/?chunk_size=8MiB').chunkSize).toBe(8 * 1024 * 1024);
    expect(target('gs://b/?chunk_size=256k').chunkSize).toBe(256 * 1024);
    expect(target('gs://b/?chunk_size=524288').chunkSize).toBe(524288);
    expect(target('gs://b/', {}, { partSizeBytes: 16 * 1024 * 1024 }).chunkSize).toBe(16 * 1024 * 1024);
    expect(target('gs://b/?chunk_size=1M', {}, { partSizeBytes: 16 * 1024 * 1024 }).chunkSize).toBe(
      1024 * 1024,
    );
    for (const bad of ['100000', '0', 'big', '1.5M'])
      expect(() => target(`gs://b/?chunk_size=${bad}`)).toThrow(/chunk size/);
  });

  it('storage classes are case-insensitive and checked', () => {
    expect(target('gs://b/?storage_class=nearline').storageClass).toBe('NEARLINE');
    expect(target('gs://b/?tier=Coldline').storageClass).toBe('COLDLINE');
    expect(() => target('gs://b/?storage_class=glacier')).toThrow(/Unknown GCS storage class "glacier"/);
  });
});

describe('describeGcsError: one line of cause and a hint', () => {
  it('a missing bucket (not a missing object) suggests creating it or create_bucket=true', () => {
    const d = describeGcsError(apiError(404, 'The specified bucket does not exist.'), 'bk', 'x');
    expect(d.text).toBe('The specified bucket does not exist. (HTTP 404)');
    expect(d.hint).toContain('The bucket "bk" does not exist');
    expect(d.hint).toContain('create_bucket=true');
    expect(describeGcsError(apiError(404, 'No such object: bk/a'), 'bk', 'x').hint).toBeUndefined();
  });

  it('401/403 and missing default credentials point at the credential sources', () => {
    for (const err of [
      apiError(403, 'sa@p.iam.gserviceaccount.com does not have storage.objects.create access'),
      apiError(401, 'Invalid Credentials'),
      new Error(
        'Could not load the default credentials. Browse to https://cloud.google.com/docs/authentication',
      ),
    ]) {
      expect(describeGcsError(err, 'bk', 'x').hint).toContain('GOOGLE_APPLICATION_CREDENTIALS');
    }
  });

  it('network failures name the endpoint', () => {
    const err = Object.assign(
      new Error('request to http://127.0.0.1:1/b failed, reason: connect ECONNREFUSED'),
      {
        code: 'ECONNREFUSED',
      },
    );
    const d = describeGcsError(err, 'bk', 'http://127.0.0.1:1');
    expect(d.text).toBe('connect ECONNREFUSED');
    expect(d.hint).toContain('Could not reach the GCS endpoint http://127.0.0.1:1');
    expect(describeGcsError(new Error('socket hang up'), 'bk', 'e').hint).toContain('endpoint e');
  });

  it('never prints an upload session id (it grants writing the object)', () => {
    const err = new Error(
      'Retry limit exceeded - http://h/upload/storage/v1/b/bk/o?upload_id=SECRET42&x=1 failed',
    );
    expect(describeGcsError(err, 'bk', 'e').text).toBe(
      'Retry limit exceeded - http://h/upload/storage/v1/b/bk/o?upload_id=****&x=1 failed',
    );
  });

  it('keeps only the first line of a long message', () => {
    expect(describeGcsError(apiError(500, 'boom\nstack'), 'b', 'e').text).toBe('boom (HTTP 500)');
  });

  it('httpStatus reads ApiError.code, GaxiosError.status and response.status, never errno strings', () => {
    expect(httpStatus(apiError(412, 'x'))).toBe(412);
    expect(httpStatus({ status: 503 })).toBe(503);
    expect(httpStatus({ response: { status: 429 } })).toBe(429);
    expect(httpStatus({ code: 'ECONNRESET' })).toBeUndefined();
    expect(httpStatus('nope')).toBeUndefined();
  });
});
