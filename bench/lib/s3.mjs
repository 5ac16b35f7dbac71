// The S3 target of the benchmark: a local fauxqs emulator in a child process (started the way
// tests/harness/s3-emulator.ts starts it), and the few S3 calls the harness makes behind dbbackup's back
// (untimed: create the bucket, sum the size of what a run stored, empty the bucket before every run).
import { spawn } from 'node:child_process';
import path from 'node:path';
import { REPO_DIR } from './config.mjs';
import { clearTimeout, setTimeout } from 'node:timers';
import { mkdirp, rmrf } from './util.mjs';

/** fauxqs checks no credentials; these only have to be present. */
export const S3_ENV = { AWS_ACCESS_KEY_ID: 'dbbackup-bench', AWS_SECRET_ACCESS_KEY: 'fauxqs-checks-none' };
export const S3_BUCKET = 'bench';

// Quiet only when started programmatically; exits when its stdin closes, so a crashed harness leaves
// nothing behind. Objects go to files under EMU_DIR (memory stays flat whatever the backup size).
const SCRIPT = `
import { startFauxqs } from 'fauxqs';
const s = await startFauxqs({ host: '127.0.0.1', port: 0, logger: false, s3StorageDir: process.env.EMU_DIR });
process.stdout.write('READY ' + s.port + '\\n');
process.stdin.on('end', () => process.exit(0)).resume();
process.on('SIGTERM', () => s.stop().finally(() => process.exit(0)));
`;

/** Start the emulator; resolves to { pid, port, endpoint, stop() }. */
export async function startS3Emulator(work) {
  const dir = path.join(work, 's3');
  rmrf(dir);
  mkdirp(dir);
  const child = spawn(process.execPath, ['--no-warnings', '--input-type=module', '-e', SCRIPT], {
    cwd: REPO_DIR, // resolves 'fauxqs' from the project's node_modules
    env: { ...process.env, EMU_DIR: dir },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s) => (stderr += s));
  const port = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`fauxqs did not start in 30 s: ${stderr}`)), 30_000);
    child.stdout.setEncoding('utf8').on('data', (s) => {
      out += s;
      const m = /READY (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(
        new Error(`fauxqs exited with ${code}: ${stderr.trim()} (is the devDependency installed? npm ci)`),
      );
    });
  }).catch((e) => {
    child.kill('SIGKILL');
    throw e;
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const { S3Client } = await import('@aws-sdk/client-s3');
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: S3_ENV.AWS_ACCESS_KEY_ID, secretAccessKey: S3_ENV.AWS_SECRET_ACCESS_KEY },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  return {
    pid: child.pid,
    port,
    endpoint,
    dir,
    client,
    async stop() {
      client.destroy();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
      rmrf(dir);
    },
  };
}

/** `s3://bench/<prefix>?endpoint=…`: the URI dbbackup is given. */
export function s3Uri(emu, prefix) {
  return `s3://${S3_BUCKET}/${prefix}?endpoint=${encodeURIComponent(emu.endpoint)}`;
}

export async function createBucket(emu) {
  const { CreateBucketCommand } = await import('@aws-sdk/client-s3');
  try {
    await emu.client.send(new CreateBucketCommand({ Bucket: S3_BUCKET }));
  } catch (e) {
    if (!/BucketAlreadyOwnedByYou|BucketAlreadyExists/.test(e.name ?? '')) throw e;
  }
}

async function listAll(emu) {
  const { ListObjectsV2Command } = await import('@aws-sdk/client-s3');
  const all = [];
  let token;
  do {
    const r = await emu.client.send(
      new ListObjectsV2Command({ Bucket: S3_BUCKET, ContinuationToken: token }),
    );
    all.push(...(r.Contents ?? []));
    token = r.IsTruncated ? r.NextContinuationToken : undefined;
  } while (token);
  return all;
}

/** Bytes stored in the bucket, without dbbackup's .sha256/.meta.json sidecars. */
export async function storedBytes(emu) {
  const objects = await listAll(emu);
  return objects
    .filter((o) => !o.Key.endsWith('.sha256') && !o.Key.endsWith('.meta.json'))
    .reduce((s, o) => s + (o.Size ?? 0), 0);
}

/** Delete every object (and abort nothing: a failed upload is dbbackup's to abort). */
export async function emptyBucket(emu) {
  const { DeleteObjectCommand } = await import('@aws-sdk/client-s3');
  for (const o of await listAll(emu))
    await emu.client.send(new DeleteObjectCommand({ Bucket: S3_BUCKET, Key: o.Key }));
}
