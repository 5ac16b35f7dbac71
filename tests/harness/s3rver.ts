import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { repoRoot } from './cli.js';

/**
 * s3rver (npm, on disk): unlike fauxqs it checks the access key id, so wrong credentials can be
 * tested. It knows one account, S3RVER/S3RVER, rejects any other access key with
 * InvalidAccessKeyId (HTTP 403), and does not check V4 signatures (a wrong secret passes).
 * See /work/shared/reference/emulators.md §1.4 for its gaps: clients must send checksums only
 * "when required" (the CLI does for a custom endpoint), and it needs OpenSSL's legacy provider on
 * Node ≥ 17 (still on Node 22) because it encrypts listing continuation tokens with DES.
 */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

export interface S3rver {
  /** `http://127.0.0.1:<port>`. */
  endpoint: string;
  port: number;
  /** The data directory: `<bucket>/<key>._S3rver_object` files. */
  dir: string;
  /** A client with the accepted credentials, for checks behind the CLI's back. */
  client(): S3Client;
  bucket(name: string): Promise<void>;
  /** SIGTERM, wait for the exit, remove the data directory. */
  stop(): Promise<void>;
}

/** Programmatic start on port 0; the script exits when its stdin closes (a crashed worker leaves nothing). */
const SCRIPT = `
const S3rver = require('s3rver');
new S3rver({ address: '127.0.0.1', port: 0, directory: process.env.EMU_DIR, silent: true })
  .run()
  .then((addr) => process.stdout.write('READY ' + addr.port + '\\n'));
process.stdin.on('end', () => process.exit(0)).resume();
process.on('SIGTERM', () => process.exit(0));
`;

const running = new Set<ChildProcess>();
process.once('exit', () => running.forEach((c) => c.kill('SIGKILL')));

export async function startS3rver(): Promise<S3rver> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'dbb-s3rver-'));
  const child = spawn(
    process.execPath,
    ['--openssl-legacy-provider', '--no-warnings', '--input-type=commonjs', '-e', SCRIPT],
    { cwd: repoRoot, env: { ...process.env, EMU_DIR: dir }, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  running.add(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => running.delete(child));
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr = (stderr + s).slice(-4000)));
  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`s3rver did not start in 30 s: ${stderr}`)), 30_000);
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
        reject(new Error(`s3rver exited with ${code}: ${stderr}`));
      });
    });
  } catch (err) {
    child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const endpoint = `http://127.0.0.1:${port}`;
  let sdk: S3Client | undefined;
  const client = (): S3Client =>
    (sdk ??= new S3Client({
      endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: S3RVER_CREDENTIALS,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    }));
  return {
    endpoint,
    port,
    dir,
    client,
    async bucket(name) {
      await client().send(new CreateBucketCommand({ Bucket: name }));
    },
    async stop() {
      sdk?.destroy();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
