import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Storage } from '@google-cloud/storage';
import { repoRoot } from './cli.js';
import { freePort, waitFor } from './proc.js';

/** The project id the emulator runs as; the CLI needs none (object calls name only the bucket). */
export const GCS_PROJECT = 'demo-backup';

export interface GcsEmulator {
  /** `http://127.0.0.1:<port>`: the value for STORAGE_EMULATOR_HOST (with http://) or ?endpoint=. */
  endpoint: string;
  pid: number;
  /** Milliseconds from spawn until `GET /b` answered. */
  startupMs: number;
  /** Resident memory now and at its peak (VmRSS, VmHWM), bytes. */
  memory(): Promise<{ rss: number; peak: number }>;
  /** An SDK client pointed at this emulator, for checks behind the CLI's back. */
  client(): Storage;
  /** SIGTERM (the emulator deletes its blobs), wait for the exit, remove the TMPDIR. */
  stop(): Promise<void>;
  /** SIGKILL now, like a crashed server; stop() still cleans up afterwards. */
  kill(): void;
}

// The SDK's downloads stack 12 listeners on one internal stream (see src/storage/gcs.ts): without
// this, checks that read objects print a false "memory leak" warning into the test output.
EventEmitter.defaultMaxListeners = Math.max(EventEmitter.defaultMaxListeners, 16);

const running = new Set<ChildProcess>();
// Never leave an emulator behind when the test worker exits without running afterAll.
process.once('exit', () => running.forEach((c) => c.kill('SIGKILL')));

/**
 * Start scripts/start-gcs-emulator.cjs (firebase-tools' storage emulator without Java) on a free
 * port. Its blob files go to TMPDIR, so each emulator gets a private temporary directory. stdin is
 * a pipe: the wrapper exits when it closes, so even a crashed test worker leaves no emulator.
 */
export async function startGcsEmulator(): Promise<GcsEmulator> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'dbb-gcs-'));
  const port = await freePort();
  const started = Date.now();
  const child = spawn(
    process.execPath,
    [path.join(repoRoot, 'scripts/start-gcs-emulator.cjs'), String(port), '127.0.0.1'],
    { env: { ...process.env, TMPDIR: tmp }, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  running.add(child);
  let log = '';
  const keep = (s: string) => (log = (log + s).slice(-4000));
  child.stdout?.setEncoding('utf8').on('data', keep);
  child.stderr?.setEncoding('utf8').on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => running.delete(child));
  const endpoint = `http://127.0.0.1:${port}`;
  const cleanup = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    await rm(tmp, { recursive: true, force: true });
  };
  try {
    await waitFor(`the GCS emulator on ${endpoint}`, 60_000, async () => {
      if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode}: ${log}`);
      const res = await fetch(`${endpoint}/b`, { signal: AbortSignal.timeout(2_000) });
      return res.ok && ((await res.json()) as { kind?: string }).kind === 'storage#buckets';
    });
  } catch (err) {
    await cleanup();
    throw err;
  }
  const startupMs = Date.now() - started;
  let sdk: Storage | undefined;
  return {
    endpoint,
    pid: child.pid ?? 0,
    startupMs,
    async memory() {
      const status = await readFile(`/proc/${child.pid}/status`, 'utf8').catch(() => '');
      const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
      return { rss: kb('VmRSS') * 1024, peak: kb('VmHWM') * 1024 };
    },
    // apiEndpoint alone covers object calls (emulators.md §3.3); this process has no STORAGE_EMULATOR_HOST.
    client: () => (sdk ??= new Storage({ projectId: GCS_PROJECT, apiEndpoint: endpoint })),
    stop: cleanup,
    kill() {
      child.kill('SIGKILL');
    },
  };
}
