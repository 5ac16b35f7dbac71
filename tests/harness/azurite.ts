import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { repoRoot } from './cli.js';
import { freePort, waitFor } from './proc.js';

/** Azurite's fixed development account; the key is public (documented by Microsoft), not a secret. */
export const AZURITE_ACCOUNT = 'devstoreaccount1';
export const AZURITE_KEY =
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export interface Azurite {
  /** `http://127.0.0.1:<port>/devstoreaccount1` (path-style account, as Azurite expects). */
  endpoint: string;
  account: string;
  key: string;
  port: number;
  /** The --location directory; pass it (and the port) to startAzurite to restart on the same data. */
  location: string;
  /** A connection string for AZURE_STORAGE_CONNECTION_STRING. */
  connectionString: string;
  /** A client for checks that bypass the CLI. */
  service: BlobServiceClient;
  /** SIGTERM, wait for exit, remove the --location directory. */
  stop(): Promise<void>;
  /** SIGKILL, keeping the data (simulates a crash / network loss mid-upload). */
  kill(): void;
  createContainer(name: string): Promise<void>;
}

const running = new Set<ChildProcess>();
// Never leave an emulator behind when the test worker exits without running afterAll.
process.once('exit', () => running.forEach((c) => c.kill('SIGKILL')));

/**
 * Start the Azurite blob service on a free port with its data on disk (a 300 MB test blob would
 * cost about 1 GB of RAM in memory mode). `--skipApiVersionCheck` is required: SDK 12.34 speaks a
 * newer API version than Azurite 3.37 knows (emulators.md N22.2).
 */
export async function startAzurite(opts: { location?: string; port?: number } = {}): Promise<Azurite> {
  const location = opts.location ?? (await mkdtemp(path.join(os.tmpdir(), 'dbb-azurite-')));
  const port = opts.port ?? (await freePort());
  const main = path.join(repoRoot, 'node_modules/azurite/dist/src/blob/main.js');
  const args = [main, '--blobHost', '127.0.0.1', '--blobPort', String(port), '--location', location];
  const child = spawn(
    process.execPath,
    [...args, '--disableTelemetry', '--skipApiVersionCheck', '--silent'],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  running.add(child);
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr = (stderr + s).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => running.delete(child));

  const endpoint = `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`;
  const service = new BlobServiceClient(
    endpoint,
    new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
    {
      retryOptions: { maxTries: 1 },
    },
  );
  try {
    await waitFor(`Azurite on port ${port}`, 30_000, async () => {
      if (child.exitCode !== null) throw new Error(`Azurite exited: ${stderr}`);
      await service.getProperties();
      return true;
    });
  } catch (err) {
    child.kill('SIGKILL');
    if (!opts.location) await rm(location, { recursive: true, force: true });
    throw err;
  }
  return {
    endpoint,
    account: AZURITE_ACCOUNT,
    key: AZURITE_KEY,
    port,
    location,
    connectionString:
      `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};` +
      `BlobEndpoint=${endpoint};`,
    service,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      await rm(location, { recursive: true, force: true });
    },
    kill() {
      child.kill('SIGKILL');
    },
    async createContainer(name: string) {
      await service.getContainerClient(name).createIfNotExists();
    },
  };
}
