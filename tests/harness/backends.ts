/**
 * Every storage backend the CLI supports, as one list of fixtures, so one suite (`describe.each`)
 * runs the same cases against a local directory and each emulator: fauxqs (S3), s3rver (S3, checks
 * the access key), Azurite (Azure Blob) and the Firebase storage emulator (GCS).
 *
 * A fixture starts its emulator lazily (`start()`), gives the URI the CLI takes for a prefix
 * (`uri`), how the CLI prints that prefix (`display`), the environment its credentials need
 * (`env`), and an ObjectStore to arrange and inspect objects behind the CLI's back.
 */
import os from 'node:os';
import path from 'node:path';
import { mkdtemp, rm } from 'node:fs/promises';
import { startAzurite, type Azurite } from './azurite.js';
import { GCS_PROJECT, startGcsEmulator, type GcsEmulator } from './gcs-emulator.js';
import { azureStore, dirStore, gcsStore, s3Store, type ObjectStore } from './object-store.js';
import { DUMMY_CREDENTIALS, startS3Emulator, type S3Emulator } from './s3-emulator.js';
import { S3RVER_CREDENTIALS, startS3rver, type S3rver } from './s3rver.js';

export type BackendName = 'local' | 's3-fauxqs' | 's3-s3rver' | 'azure' | 'gcs';

export interface Backend {
  readonly name: BackendName;
  /** Start the emulator (or make the directory); idempotent. */
  start(): Promise<void>;
  /** Stop the emulator and remove its data; idempotent. */
  stop(): Promise<void>;
  /** What the CLI takes for the prefix `prefix` (no trailing slash in `prefix`; '' is the root). */
  uri(prefix: string): string;
  /** What the CLI takes for one object under the root. */
  objectUri(key: string): string;
  /** How the CLI names the prefix in its messages (secrets masked, no query). */
  display(prefix: string): string;
  /** Variables the CLI needs (credentials); others that could leak in are unset. */
  env(): Record<string, string | undefined>;
  /** Keys are relative to the bucket (or the directory). */
  store(): ObjectStore;
}

/** No caller's credentials or endpoints may leak into a test run. */
const NEUTRAL_ENV: Record<string, string | undefined> = {
  AWS_ACCESS_KEY_ID: undefined,
  AWS_SECRET_ACCESS_KEY: undefined,
  AWS_SESSION_TOKEN: undefined,
  AWS_PROFILE: undefined,
  AWS_REGION: undefined,
  AWS_ENDPOINT_URL: undefined,
  AWS_ENDPOINT_URL_S3: undefined,
  AWS_EC2_METADATA_DISABLED: 'true',
  AZURE_STORAGE_CONNECTION_STRING: undefined,
  AZURE_STORAGE_ACCOUNT: undefined,
  AZURE_STORAGE_KEY: undefined,
  STORAGE_EMULATOR_HOST: undefined,
  GOOGLE_APPLICATION_CREDENTIALS: undefined,
  DBBACKUP_CLOUD_ENDPOINT: undefined,
  DBBACKUP_CLOUD_BUCKET: undefined,
  DBBACKUP_CLOUD_PREFIX: undefined,
  DBBACKUP_S3_CHECKSUMS: undefined,
  DBBACKUP_ENCRYPTION_KEY: undefined,
};

const BUCKET = 'dbb-contract';

function join(prefix: string, rest = ''): string {
  return [prefix, rest].filter(Boolean).join('/');
}

function localBackend(): Backend {
  let dir: string | undefined;
  const root = (): string => {
    if (!dir) throw new Error('local backend not started');
    return dir;
  };
  return {
    name: 'local',
    async start() {
      dir ??= await mkdtemp(path.join(os.tmpdir(), 'dbb-contract-'));
    },
    async stop() {
      if (dir) await rm(dir, { recursive: true, force: true });
      dir = undefined;
    },
    uri: (prefix) => path.join(root(), ...prefix.split('/').filter(Boolean)),
    objectUri: (key) => path.join(root(), ...key.split('/')),
    display: (prefix) => path.join(root(), ...prefix.split('/').filter(Boolean)),
    env: () => ({ ...NEUTRAL_ENV }),
    store: () => dirStore(root()),
  };
}

function fauxqsBackend(): Backend {
  let emu: S3Emulator | undefined;
  const e = (): S3Emulator => {
    if (!emu) throw new Error('fauxqs not started');
    return emu;
  };
  return {
    name: 's3-fauxqs',
    async start() {
      if (emu) return;
      emu = await startS3Emulator();
      await emu.bucket(BUCKET);
    },
    async stop() {
      await emu?.stop();
      emu = undefined;
    },
    uri: (prefix) => `s3://${BUCKET}/${join(prefix)}${prefix ? '/' : ''}?endpoint=${e().endpoint}`,
    objectUri: (key) => `s3://${BUCKET}/${key}?endpoint=${e().endpoint}`,
    display: (prefix) => `s3://${BUCKET}/${join(prefix)}`,
    env: () => ({
      ...NEUTRAL_ENV,
      AWS_ACCESS_KEY_ID: DUMMY_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: DUMMY_CREDENTIALS.secretAccessKey,
    }),
    store: () => s3Store(e().client(), BUCKET),
  };
}

function s3rverBackend(): Backend {
  let emu: S3rver | undefined;
  const e = (): S3rver => {
    if (!emu) throw new Error('s3rver not started');
    return emu;
  };
  return {
    name: 's3-s3rver',
    async start() {
      if (emu) return;
      emu = await startS3rver();
      await emu.bucket(BUCKET);
    },
    async stop() {
      await emu?.stop();
      emu = undefined;
    },
    uri: (prefix) => `s3://${BUCKET}/${join(prefix)}${prefix ? '/' : ''}?endpoint=${e().endpoint}`,
    objectUri: (key) => `s3://${BUCKET}/${key}?endpoint=${e().endpoint}`,
    display: (prefix) => `s3://${BUCKET}/${join(prefix)}`,
    env: () => ({
      ...NEUTRAL_ENV,
      AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    }),
    store: () => s3Store(e().client(), BUCKET),
  };
}

function azureBackend(): Backend {
  let emu: Azurite | undefined;
  const e = (): Azurite => {
    if (!emu) throw new Error('Azurite not started');
    return emu;
  };
  const query = (): string =>
    `?endpoint=${encodeURIComponent(e().endpoint)}&account=${e().account}&key=${encodeURIComponent(e().key)}`;
  return {
    name: 'azure',
    async start() {
      if (emu) return;
      emu = await startAzurite();
      await emu.createContainer(BUCKET);
    },
    async stop() {
      await emu?.stop();
      emu = undefined;
    },
    uri: (prefix) => `azure://${BUCKET}/${join(prefix)}${prefix ? '/' : ''}${query()}`,
    objectUri: (key) => `azure://${BUCKET}/${key}${query()}`,
    display: (prefix) => `azure://${BUCKET}/${join(prefix)}`,
    env: () => ({ ...NEUTRAL_ENV }),
    store: () => azureStore(e().service, BUCKET),
  };
}

function gcsBackend(): Backend {
  let emu: GcsEmulator | undefined;
  const e = (): GcsEmulator => {
    if (!emu) throw new Error('GCS emulator not started');
    return emu;
  };
  return {
    name: 'gcs',
    async start() {
      if (emu) return;
      // The emulator keeps buckets in memory and creates one on its first write.
      emu = await startGcsEmulator();
    },
    async stop() {
      await emu?.stop();
      emu = undefined;
    },
    uri: (prefix) => `gs://${BUCKET}/${join(prefix)}${prefix ? '/' : ''}`,
    objectUri: (key) => `gs://${BUCKET}/${key}`,
    display: (prefix) => `gs://${BUCKET}/${join(prefix)}`,
    env: () => ({ ...NEUTRAL_ENV, STORAGE_EMULATOR_HOST: e().endpoint, GOOGLE_CLOUD_PROJECT: GCS_PROJECT }),
    store: () => gcsStore(e().client(), BUCKET),
  };
}

/** A fresh, unstarted fixture of every backend, in a fixed order. */
export function allBackends(): Backend[] {
  return [localBackend(), fauxqsBackend(), s3rverBackend(), azureBackend(), gcsBackend()];
}
