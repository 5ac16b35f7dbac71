import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { repoRoot } from './cli.js';

export interface S3Emulator {
  /** `http://127.0.0.1:<port>`: pass it as `?endpoint=` (URL-encoded) in URIs. */
  endpoint: string;
  port: number;
  /** fauxqs file storage: `buckets/<bucket>/objects/<key>.data`, open uploads in `_multipart/`. */
  dir: string;
  /** SIGTERM, wait for the exit, remove `dir` if this call created it. */
  stop(): Promise<void>;
  /** SIGKILL now, like a crashed server; `dir` is kept so a new emulator can reopen it. */
  kill(): void;
  bucket(name: string): Promise<void>;
  /** A plain SDK client for checks behind the CLI's back (dummy credentials: fauxqs checks none). */
  client(): S3Client;
}

/**
 * fauxqs runs in a child process, not in the test worker, so a test can SIGKILL it mid-upload. It is
 * started programmatically because only `startFauxqs({ logger: false })` is quiet, and it exits when
 * its stdin closes, so a crashed test worker cannot leave it behind.
 */
const SCRIPT = `
import { startFauxqs } from 'fauxqs';
const s = await startFauxqs({ port: Number(process.env.EMU_PORT), logger: false, s3StorageDir: process.env.EMU_DIR });
process.stdout.write('READY ' + s.port + '\\n');
process.stdin.on('end', () => process.exit(0)).resume();
process.on('SIGTERM', () => s.stop().finally(() => process.exit(0)));
`;

/** Any credentials pass; the secret is unusual because the CLI masks its value in every message. */
export const DUMMY_CREDENTIALS = { accessKeyId: 'dbbackup-e2e', secretAccessKey: 'fauxqs-checks-no-secret' };

export async function startS3Emulator(opts: { dir?: string; port?: number } = {}): Promise<S3Emulator> {
  const dir = opts.dir ?? (await mkdtemp(path.join(os.tmpdir(), 'dbb-fauxqs-')));
  const child = spawn(process.execPath, ['--no-warnings', '--input-type=module', '-e', SCRIPT], {
    cwd: repoRoot, // resolves 'fauxqs' from the project's node_modules
    env: { ...process.env, EMU_DIR: dir, EMU_PORT: String(opts.port ?? 0) },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const ready = new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`fauxqs did not start in 30 s: ${stderr}`)), 30_000);
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      const m = /READY (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`fauxqs exited with ${code}: ${stderr}`));
    });
  });
  let port: number;
  try {
    port = await ready;
  } catch (err) {
    // Not started (e.g. Node < 22.5 cannot load fauxqs 2): leave no process and no directory behind.
    child.kill('SIGKILL');
    if (!opts.dir) await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const endpoint = `http://127.0.0.1:${port}`;
  let sdk: S3Client | undefined;
  const client = (): S3Client =>
    (sdk ??= new S3Client({
      endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: DUMMY_CREDENTIALS,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    }));
  return {
    endpoint,
    port,
    dir,
    async stop() {
      sdk?.destroy();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
      if (!opts.dir) await rm(dir, { recursive: true, force: true });
    },
    kill() {
      child.kill('SIGKILL');
    },
    async bucket(name) {
      await client().send(new CreateBucketCommand({ Bucket: name }));
    },
    client,
  };
}
