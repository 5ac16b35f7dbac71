import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IntegrityError } from '../../src/errors.js';
import { ManifestExtract } from '../../src/pitr/base-compressed.js';

/** Feeds `bytes` through the tee (as the write group does) and returns what passed and the manifest. */
async function run(bytes: Buffer): Promise<{ passed: Buffer; manifest: Promise<Buffer> }> {
  const x = new ManifestExtract({ tar: 'tar', zstd: 'zstd' });
  const parts: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      parts.push(chunk);
      cb();
    },
  });
  const chunks = Array.from({ length: Math.ceil(bytes.length / 65536) }, (_, i) =>
    bytes.subarray(i * 65536, (i + 1) * 65536),
  );
  await pipeline(Readable.from(chunks), x.tee, sink).catch(() => undefined);
  const manifest = x.manifest();
  manifest.catch(() => undefined);
  return { passed: Buffer.concat(parts), manifest };
}

describe('ManifestExtract: backup_manifest out of pg_basebackup compressed stdout', () => {
  let dir: string;
  const manifestText = Buffer.from('{ "PostgreSQL-Backup-Manifest-Version": 1, "Files": [] }\n');
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'base-compressed-test-'));
    // Incompressible data, so that the compressed stream is several MiB and the pipe fills.
    await writeFile(path.join(dir, 'data'), randomBytes(8 * 1024 * 1024));
    await writeFile(path.join(dir, 'backup_manifest'), manifestText);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const tarZst = (...names: string[]): Buffer =>
    execFileSync('bash', ['-c', `tar -C ${dir} -cf - ${names.join(' ')} | zstd -q -3`], {
      maxBuffer: 64 * 1024 * 1024,
    });

  it('passes every byte on unchanged and yields the last member', async () => {
    const stream = tarZst('data', 'backup_manifest');
    const r = await run(stream);
    expect(r.passed.equals(stream)).toBe(true);
    expect((await r.manifest).equals(manifestText)).toBe(true);
  });

  it('a stream without backup_manifest is an IntegrityError', async () => {
    const r = await run(tarZst('data'));
    await expect(r.manifest).rejects.toBeInstanceOf(IntegrityError);
  });

  it('bytes that are not zstd are an IntegrityError, not a hang', async () => {
    const r = await run(randomBytes(4 * 1024 * 1024));
    await expect(r.manifest).rejects.toBeInstanceOf(IntegrityError);
  });
});
