import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { FrameTail, lastTarMember, manifestFromFrames } from '../../src/pitr/frame-tail.js';
import { TAR_END, tarHeader, tarPadding } from '../../src/pitr/incremental/tar.js';

/** A tar like pg_basebackup's: members, backup_manifest last, two zero blocks. */
function tarOf(members: Array<[string, Buffer]>, end = TAR_END): Buffer {
  const parts: Buffer[] = [];
  for (const [name, data] of members) parts.push(tarHeader(name, data.length), data, tarPadding(data.length));
  parts.push(end);
  return Buffer.concat(parts);
}

function run(file: string, args: string[], input: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    const out: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`${file} ${code}`)),
    );
    child.stdin.end(input);
  });
}

/** pzstd's output through FrameTail: what it passes on, and the tap. */
async function throughTail(compressed: Buffer, keep?: number): Promise<{ stored: Buffer; tail: FrameTail }> {
  const tail = new FrameTail(keep);
  const out: Buffer[] = [];
  await pipeline(
    Readable.from([compressed.subarray(0, 100_000), compressed.subarray(100_000)]),
    tail,
    new Writable({
      write(c: Buffer, _e, cb) {
        out.push(c);
        cb();
      },
    }),
  );
  return { stored: Buffer.concat(out), tail };
}

describe('FrameTail (pzstd frames, the tar end decoded from the last ones)', () => {
  // 20 MiB of half-compressible data: three pzstd frames of 8 MiB input.
  const data = Buffer.concat(
    Array.from({ length: 20 }, (_, i) =>
      Buffer.concat([randomBytes(512 * 1024), Buffer.alloc(512 * 1024, i)]),
    ),
  );
  const manifest = Buffer.from(
    `{ "PostgreSQL-Backup-Manifest-Version": 1, "Files": [${'{"Path": "x"},'.repeat(2000)}] }\n`,
  );
  const tar = tarOf([
    ['base/1/1234', data],
    ['backup_manifest', manifest],
  ]);

  it('stores plain multi-frame zstd (no skippable frames) that decodes to the tar, and finds the manifest', async () => {
    const compressed = await run('pzstd', ['-q', '-3', '-p', '2', '-c'], tar);
    const { stored, tail } = await throughTail(compressed);
    expect(tail.frames).toBeGreaterThanOrEqual(3);
    expect(stored.readUInt32LE(0)).toBe(0xfd2fb528);
    expect(stored.length).toBe(compressed.length - 12 * tail.frames);
    expect((await run('zstd', ['-q', '-d', '-c'], stored)).equals(tar)).toBe(true);
    const end = await manifestFromFrames(tail, 'zstd');
    expect(end.complete).toBe(true);
    expect(end.manifest?.equals(manifest)).toBe(true);
  });

  it('a manifest longer than the last frame is read from the frames before it', async () => {
    const big = Buffer.from(`{"Files": [${'{"Path": "base/1/1234", "Size": 8192},'.repeat(300_000)}]}\n`);
    const twoFrames = tarOf([['backup_manifest', big]]);
    const compressed = await run('pzstd', ['-q', '-3', '-p', '2', '-c'], twoFrames);
    const { tail } = await throughTail(compressed);
    expect(tail.frames).toBeGreaterThanOrEqual(2);
    expect((await manifestFromFrames(tail, 'zstd')).manifest?.equals(big)).toBe(true);
    // Kept frames are bounded: with one frame kept the header is out of reach, and that is said.
    const { tail: short } = await throughTail(compressed, 1);
    expect(await manifestFromFrames(short, 'zstd')).toEqual({ complete: true, manifest: undefined });
  });

  it('a stream from another compressor, or cut inside a frame, is refused', async () => {
    const zstd = await run('zstd', ['-q', '-3', '-c'], tar);
    await expect(throughTail(zstd)).rejects.toThrow(/did not write pzstd frames/);
    const compressed = await run('pzstd', ['-q', '-3', '-p', '2', '-c'], tar);
    await expect(throughTail(compressed.subarray(0, compressed.length - 10))).rejects.toThrow(
      /ends inside a pzstd frame/,
    );
  });

  it('lastTarMember: the end-of-archive marker, and the member just before it', () => {
    const m = Buffer.from('{"a":1}\n');
    const t = tarOf([
      ['base/x', Buffer.alloc(700, 1)],
      ['backup_manifest', m],
    ]);
    expect(lastTarMember(t, 'backup_manifest').content?.equals(m)).toBe(true);
    // Cut anywhere before the header: complete, but the member is out of reach.
    expect(lastTarMember(t.subarray(t.length - 1536), 'backup_manifest')).toEqual({ complete: true });
    // Without the two zero blocks the archive is not complete.
    expect(lastTarMember(t.subarray(0, t.length - 1024), 'backup_manifest').complete).toBe(false);
    // Another last member: no manifest.
    const other = tarOf([
      ['backup_manifest', m],
      ['base/y', Buffer.alloc(10)],
    ]);
    expect(lastTarMember(other, 'backup_manifest')).toEqual({ complete: true });
  });
});
