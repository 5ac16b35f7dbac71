import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { checkScheme } from '../../src/storage/uri.js';
import {
  asPrefix,
  isCloudUri,
  maskUri,
  parseCloudUri,
  splitObjectPath,
} from '../../src/storage/cloud-uri.js';

describe('parseCloudUri: every supported form', () => {
  it.each([
    ['s3://bucket/path/x.dump', 's3', 's3', 'bucket', 'path/x.dump'],
    ['minio://bucket/dir/', 'minio', 's3', 'bucket', 'dir/'],
    ['b2://bucket/p', 'b2', 's3', 'bucket', 'p'],
    ['azure://container/a/b', 'azure', 'azure', 'container', 'a/b'],
    ['azblob://container/', 'azblob', 'azure', 'container', ''],
    ['gs://bucket/backups/', 'gs', 'gcs', 'bucket', 'backups/'],
    ['gcs://bucket', 'gcs', 'gcs', 'bucket', ''],
    ['S3://Bucket/Key', 's3', 's3', 'Bucket', 'Key'],
  ])('%s', (uri, scheme, provider, bucket, path) => {
    expect(parseCloudUri(uri)).toMatchObject({ scheme, provider, bucket, path });
  });

  it('takes bucket and region from AWS virtual-host names', () => {
    expect(parseCloudUri('s3://my-bucket.s3.eu-west-1.amazonaws.com/backups/x')).toMatchObject({
      bucket: 'my-bucket',
      path: 'backups/x',
      params: { region: 'eu-west-1' },
    });
    expect(parseCloudUri('s3://my-bucket.s3-us-west-2.amazonaws.com/x').params.region).toBe('us-west-2');
    expect(parseCloudUri('s3://my-bucket.s3.amazonaws.com/x')).toMatchObject({
      bucket: 'my-bucket',
      params: { region: 'us-east-1' },
    });
    // An explicit ?region= wins over the host name.
    expect(parseCloudUri('s3://b.s3.eu-west-1.amazonaws.com/x?region=eu-central-1').params.region).toBe(
      'eu-central-1',
    );
  });

  it('reads every query parameter', () => {
    const u = parseCloudUri(
      'azure://c/p/?endpoint=http%3A%2F%2F127.0.0.1%3A10000%2Fdevstoreaccount1&account=acct&key=SECRET&sas=sv%3D1&credentials=%2Fk.json&project=proj&create_bucket=true&tier=cool&region=r&path_style=false',
    );
    expect(u.params).toEqual({
      endpoint: 'http://127.0.0.1:10000/devstoreaccount1',
      account: 'acct',
      key: 'SECRET',
      sas: 'sv=1',
      credentials: '/k.json',
      project: 'proj',
      createBucket: true,
      storageClass: 'cool',
      region: 'r',
      pathStyle: false,
    });
    expect(parseCloudUri('s3://b/p?storage_class=GLACIER_IR&create=1').params).toEqual({
      storageClass: 'GLACIER_IR',
      createBucket: true,
    });
    // A raw (unencoded) endpoint with its own slashes stays in the query.
    expect(parseCloudUri('minio://b/p/?endpoint=http://127.0.0.1:9000/').params.endpoint).toBe(
      'http://127.0.0.1:9000/',
    );
  });

  it('takes the path literally, as printed: no percent-decoding (issue 21 #5)', () => {
    // The object's real name: safeName("shop#x") is shop%23x; it used to be decoded to "shop#x".
    expect(parseCloudUri('gs://b/p/shop%23x_20261126_050000.dump.zst').path).toBe(
      'p/shop%23x_20261126_050000.dump.zst',
    );
    expect(parseCloudUri('gs://b/my%20dir/a%25b.dump').path).toBe('my%20dir/a%25b.dump');
    expect(parseCloudUri('s3://b/my dir/año+#1/x.dump?region=r').path).toBe('my dir/año+#1/x.dump');
  });

  it('refuses unknown options, so a "?" inside a prefix cannot silently shorten it', () => {
    expect(() => parseCloudUri('s3://b/what?/x.dump')).toThrow(/Unknown option "\/x.dump"/);
    expect(() => parseCloudUri('s3://b/p/?endpont=http://h')).toThrow(/Unknown option "endpont"/);
  });
});

describe('parseCloudUri: malformed and unknown', () => {
  it.each(['ftp://host/x', 'http://bucket/x', 'sftp://h/p'])('rejects %s with the supported list', (uri) => {
    expect(() => parseCloudUri(uri)).toThrow(UsageError);
    try {
      parseCloudUri(uri);
    } catch (err) {
      expect((err as UsageError).hint).toContain('s3://');
      expect((err as UsageError).hint).toContain('azure://');
      expect((err as UsageError).hint).toContain('gs://');
    }
  });

  it.each(['s3://', 's3:///path', 'gs://?region=r', 'not a uri', 's3:/bucket/x'])('rejects %s', (uri) => {
    expect(() => parseCloudUri(uri)).toThrow(UsageError);
  });

  it('never puts a secret into the error message', () => {
    expect(() => parseCloudUri('bogus://b/x?key=TOPSECRET')).toThrow(/bogus/);
    try {
      parseCloudUri('bogus://b/x?key=TOPSECRET&sas=ALSOSECRET');
    } catch (err) {
      expect((err as Error).message).not.toContain('TOPSECRET');
      expect((err as Error).message).not.toContain('ALSOSECRET');
    }
  });
});

describe('helpers', () => {
  it('isCloudUri knows the cloud schemes only', () => {
    expect(isCloudUri('s3://b/x')).toBe(true);
    expect(isCloudUri('AZBLOB://c/x')).toBe(true);
    expect(isCloudUri('file:///tmp/x')).toBe(false);
    expect(isCloudUri('/tmp/s3://x')).toBe(false);
  });

  it('maskUri hides keys, SAS tokens, signatures and userinfo passwords', () => {
    expect(maskUri('azure://c/p?account=a&key=K3Y&sas=S4S&sig=S1G')).toBe(
      'azure://c/p?account=a&key=****&sas=****&sig=****',
    );
    expect(maskUri('s3://user:pa55@b/x')).toBe('s3://user:****@b/x');
  });

  it('splits object paths and makes prefixes', () => {
    expect(splitObjectPath('a/b/c.dump')).toEqual({ prefix: 'a/b/', name: 'c.dump' });
    expect(splitObjectPath('c.dump')).toEqual({ prefix: '', name: 'c.dump' });
    expect(splitObjectPath('a/')).toEqual({ prefix: 'a/', name: '' });
    expect(asPrefix('')).toBe('');
    expect(asPrefix('a')).toBe('a/');
    expect(asPrefix('a/')).toBe('a/');
  });
});

describe('checkScheme: anything that starts like a URI is one (issue 11)', () => {
  it.each([
    ['s3:/bucket/x', /Malformed storage URI "s3:\/bucket\/x"/, /s3:\/\/bucket\/x/],
    ['s3:bucket/x', /Malformed storage URI/, /s3:\/\/bucket\/x/],
    ['gs:/b', /Malformed storage URI/, /gs:\/\/b/],
    ['file:/tmp/x', /Malformed storage URI/, /file:\/\/tmp\/x/],
    ['ftp://host/x', /Unknown storage scheme "ftp:"/, /\.\/ftp:\/\/host\/x/],
    ['backups:2026', /Unknown storage scheme "backups:"/, /\.\/backups:2026/],
  ])('%s is a usage error with a hint, not a relative directory', (arg, message, hint) => {
    try {
      checkScheme(arg);
      expect.unreachable(`${arg} was accepted`);
    } catch (err) {
      expect(err).toBeInstanceOf(UsageError);
      expect((err as UsageError).exitCode).toBe(2);
      expect((err as UsageError).message).toMatch(message);
      expect((err as UsageError).hint).toMatch(hint);
    }
  });

  it.each(['/tmp/x', './s3:x', 'relative/dir', 'file:///tmp/x', 's3://b/p/', 'AZURE://c/x'])(
    'accepts %s',
    (arg) => {
      expect(() => checkScheme(arg)).not.toThrow();
    },
  );
});
