import type { ContainerClient } from '@azure/storage-blob';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StorageError, UsageError } from '../../src/errors.js';
import { resolveAzureAuth } from '../../src/storage/azure/auth.js';
import {
  AzureStorage,
  fromAzureMetadata,
  openAzure,
  parseTier,
  toAzureMetadata,
} from '../../src/storage/azure/azure.js';
import { parseCloudUri } from '../../src/storage/cloud-uri.js';

const KEY = 'c2VjcmV0LWtleS1ub3QtcmVhbA==';
const ENDPOINT = 'http://127.0.0.1:10000/devstoreaccount1';
const AZ_VARS = [
  'AZURE_STORAGE_CONNECTION_STRING',
  'AZURE_STORAGE_ACCOUNT',
  'AZURE_STORAGE_KEY',
  'AZURE_STORAGE_SAS_TOKEN',
];
const saved: Record<string, string | undefined> = {};
beforeEach(() => AZ_VARS.forEach((v) => ((saved[v] = process.env[v]), delete process.env[v])));
afterEach(() =>
  AZ_VARS.forEach((v) => (saved[v] === undefined ? delete process.env[v] : (process.env[v] = saved[v]))),
);

const uri = (s: string) => parseCloudUri(s);

describe('resolveAzureAuth', () => {
  it('prefers the URI account and key, with its endpoint', () => {
    const auth = resolveAzureAuth(
      uri(`azure://c/p/?account=acct&key=${encodeURIComponent(KEY)}&endpoint=${ENDPOINT}`),
      { accessKey: 'flag', secretKey: 'flagkey' },
      { AZURE_STORAGE_CONNECTION_STRING: 'UseDevelopmentStorage=true' },
    );
    expect(auth).toEqual({ kind: 'sharedKey', endpoint: ENDPOINT, account: 'acct', key: KEY });
  });

  it('builds the public endpoint from the account, and takes a SAS token from the URI', () => {
    expect(resolveAzureAuth(uri('azblob://c/?account=acct&sas=sv%3D1%26sig%3Dabc'), {}, {})).toEqual({
      kind: 'sas',
      endpoint: 'https://acct.blob.core.windows.net',
      sas: 'sv=1&sig=abc',
    });
  });

  it('then the flags, then the connection string, then account + key or SAS from the environment', () => {
    const u = uri('azure://c/');
    expect(resolveAzureAuth(u, { accessKey: 'a', secretKey: 'k' }, {})).toMatchObject({
      kind: 'sharedKey',
      account: 'a',
      endpoint: 'https://a.blob.core.windows.net',
    });
    expect(
      resolveAzureAuth(u, {}, { AZURE_STORAGE_CONNECTION_STRING: 'cs', AZURE_STORAGE_ACCOUNT: 'a' }),
    ).toEqual({ kind: 'connectionString', connectionString: 'cs' });
    expect(resolveAzureAuth(u, {}, { AZURE_STORAGE_ACCOUNT: 'a', AZURE_STORAGE_KEY: 'k' })).toMatchObject({
      kind: 'sharedKey',
      key: 'k',
    });
    expect(
      resolveAzureAuth(u, {}, { AZURE_STORAGE_ACCOUNT: 'a', AZURE_STORAGE_SAS_TOKEN: '?sv=1' }),
    ).toMatchObject({
      kind: 'sas',
      sas: '?sv=1',
    });
  });

  it('falls back to Azure AD for a known account, and is a usage error without any account', () => {
    expect(resolveAzureAuth(uri('azure://c/'), {}, { AZURE_STORAGE_ACCOUNT: 'a' })).toEqual({
      kind: 'token',
      endpoint: 'https://a.blob.core.windows.net',
    });
    const err = (() => {
      try {
        resolveAzureAuth(uri('azure://c/'), {}, {});
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).hint).toMatch(/AZURE_STORAGE_CONNECTION_STRING/);
    expect((err as UsageError).hint).toMatch(/AZURE_STORAGE_ACCOUNT/);
  });

  it('rejects a key without an account and an endpoint that is not a URL', () => {
    expect(() => resolveAzureAuth(uri(`azure://c/?key=${KEY}`), {}, {})).toThrow(UsageError);
    expect(() => resolveAzureAuth(uri(`azure://c/?account=a&key=k&endpoint=nope`), {}, {})).toThrow(
      /Invalid Azure endpoint/,
    );
  });
});

describe('metadata, tiers and names', () => {
  it('maps metadata names to C# identifiers and back, values to header-safe text and back', () => {
    const meta = { 'dbbackup-database': 'bücher 100% ✓', 'dbbackup-engine': 'postgres' };
    const azure = toAzureMetadata(meta);
    expect(Object.keys(azure)).toEqual(['dbbackup_database', 'dbbackup_engine']);
    for (const v of Object.values(azure)) expect(v).toMatch(/^[\x21-\x7e]*$/);
    expect(fromAzureMetadata(azure)).toEqual(meta);
    expect(fromAzureMetadata({ other_tool: 'raw %zz' })).toEqual({ 'other-tool': 'raw %zz' });
  });

  it('accepts Hot, Cool and Cold in any case, and refuses Archive (backups are read back)', () => {
    expect(parseTier('cool')).toBe('Cool');
    expect(parseTier('COLD')).toBe('Cold');
    expect(() => parseTier('archive')).toThrow(/Archive tier cannot be written/);
    expect(parseTier(undefined)).toBeUndefined();
    expect(() => parseTier('glacier')).toThrow(UsageError);
  });

  it('refuses invalid container names before any request', async () => {
    await expect(openAzure(uri('azure://My_Container/?account=a&key=k'), '', {})).rejects.toThrow(
      /Invalid Azure container name/,
    );
  });

  it('masks the location: only scheme, container and prefix', async () => {
    const store = await openAzure(
      uri(`azure://backups/db/?account=a&key=${KEY}&endpoint=${ENDPOINT}`),
      'db/',
      {},
    );
    expect(store.location).toBe('azure://backups/db/');
  });
});

/** A container whose blobs fail every call with `err`, to check the messages built from Azure errors. */
function failingStore(err: unknown, secrets: string[] = []): AzureStorage {
  const fail = async () => {
    throw err;
  };
  const blob = {
    stageBlock: fail,
    commitBlockList: fail,
    download: fail,
    getProperties: fail,
    deleteIfExists: fail,
  };
  const container = {
    containerName: 'backups',
    getBlockBlobClient: () => blob,
  } as unknown as ContainerClient;
  return new AzureStorage(container, 'db/', {
    scheme: 'azure',
    endpoint: ENDPOINT,
    createContainer: false,
    tier: undefined,
    settings: {},
    secrets,
  });
}

const restError = (statusCode: number | undefined, code: string, message: string) =>
  Object.assign(new Error(message), { name: 'RestError', statusCode, code, details: { errorCode: code } });

describe('Azure errors', () => {
  const put = (s: AzureStorage) => s.put('x.dump', Readable.from([Buffer.from('data')]));

  it('names the blob and suggests create_bucket for a missing container', async () => {
    const err = await put(
      failingStore(
        restError(404, 'ContainerNotFound', 'The specified container does not exist.\nRequestId:1'),
      ),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).message).toBe(
      'Could not upload azure://backups/db/x.dump: The specified container does not exist. (ContainerNotFound)',
    );
    expect((err as StorageError).hint).toMatch(/create_bucket=true/);
  });

  it('gives a credentials hint for 403 and never shows a secret', async () => {
    const err = (await put(
      failingStore(restError(403, 'AuthorizationFailure', `bad signature for ${KEY}`), [KEY]),
    ).catch((e: unknown) => e)) as StorageError;
    expect(err.message).not.toContain(KEY);
    expect(err.message).toContain('****');
    expect(err.hint).toMatch(/credentials/);
  });

  it('gives an endpoint hint when the service cannot be reached', async () => {
    const err = (await failingStore(restError(undefined, 'ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:1'))
      .get('x.dump')
      .catch((e: unknown) => e)) as StorageError;
    expect(err.hint).toContain(ENDPOINT);
  });
});
