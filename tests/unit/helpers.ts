import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable, type Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { METADATA_SCHEMA, METADATA_VERSION, type BackupMetadata } from '../../src/catalog/metadata.js';

/** A fresh temporary directory and a function that removes it. */
export async function tempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'dbbackup-unit-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** Push `chunks` through `transform` and return everything it emitted. */
export async function runThrough(transform: Duplex, chunks: Buffer[]): Promise<Buffer> {
  const out: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out.push(chunk);
      cb();
    },
  });
  await pipeline(Readable.from(chunks, { objectMode: false }), transform, sink);
  return Buffer.concat(out);
}

/** Split a buffer into pieces of the given sizes (cycled), so chunk boundaries land anywhere. */
export function splitInto(data: Buffer, sizes: number[]): Buffer[] {
  const pieces: Buffer[] = [];
  let offset = 0;
  let i = 0;
  while (offset < data.length) {
    const size = Math.max(1, sizes[i++ % sizes.length] ?? 1);
    pieces.push(data.subarray(offset, offset + size));
    offset += size;
  }
  return pieces;
}

/** Compressible but not trivially so: repeated text lines with a counter. */
export function repetitive(bytes: number): Buffer {
  const lines: string[] = [];
  let total = 0;
  for (let i = 0; total < bytes; i++) {
    const line = `INSERT INTO t VALUES (${i}, 'row number ${i % 97}');\n`;
    lines.push(line);
    total += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, bytes);
}

export function random(bytes: number): Buffer {
  return randomBytes(bytes);
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A schema-valid metadata object describing `data` stored under `file`. */
export function metadataFor(
  file: string,
  data: Buffer,
  overrides: Partial<BackupMetadata> = {},
): BackupMetadata {
  return {
    schema: METADATA_SCHEMA,
    schemaVersion: METADATA_VERSION,
    tool: { name: 'dbbackup', version: '0.1.0' },
    kind: 'single',
    engine: 'postgres',
    database: 'shop',
    server: { version: '15.19', versionString: 'PostgreSQL 15.19 (Debian 15.19-0+deb12u1)' },
    connection: { host: '127.0.0.1', port: 5432, user: 'postgres' },
    dumpTool: { name: 'pg_dump', version: '15.19', args: ['--format=custom'] },
    format: 'custom',
    compression: { algorithm: 'none', level: 0, implementation: 'none' },
    encryption: null,
    file,
    sizeBytes: data.length,
    sha256: sha256(data),
    dumpBytes: data.length,
    databaseSizeBytes: 8_000_000,
    startedAt: '2026-03-29T01:30:00.000Z',
    finishedAt: '2026-03-29T01:30:02.000Z',
    durationSeconds: 2,
    tables: [{ schema: 'public', name: 'orders', rows: 10, rowsExact: true, bytes: 8192 }],
    warnings: [],
    ...overrides,
  };
}

/** A stand-in for stderr that keeps what was written, split into lines. */
export function textSink(): { stream: NodeJS.WriteStream; lines: () => string[] } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  }) as unknown as NodeJS.WriteStream;
  return { stream, lines: () => text.split('\n').filter(Boolean) };
}
