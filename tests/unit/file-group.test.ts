import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { commitUnit, InterruptedError } from '../../src/catalog/commit.js';
import { createEncryptStream, describeEncryption, keyProtector } from '../../src/crypto/index.js';
import { StorageError } from '../../src/errors.js';
import { planCompression } from '../../src/pipeline/compression.js';
import { startWriteGroup, type FileTarget, type WriteGroup } from '../../src/pipeline/filter-group.js';
import { ToolProcess } from '../../src/pipeline/process.js';
import { LocalStorage, TEMP_MARKER } from '../../src/storage/local/local.js';

/**
 * A write group whose stages all run outside this process writes its file itself: the external
 * compressor's stdout is the file (Storage.createFile), and the group reads it back behind the
 * compressor for the SHA-256 and the size.
 */

const dirs: string[] = [];
async function store(): Promise<LocalStorage> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'dbb-file-group-'));
  dirs.push(dir);
  return new LocalStorage(dir);
}
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function walk(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.map((e) => path.relative(dir, path.join(e.parentPath, e.name))).sort();
}

function program(script: string): ToolProcess {
  return new ToolProcess(
    { file: 'sh', args: ['-c', script], env: process.env, name: 'producer' },
    ['ignore', 'pipe', 'pipe'],
    (line) => (/^fatal/.test(line) ? 'error' : 'info'),
  );
}

/** A starter for Commit.put that remembers the group it started. */
function starter(make: (file?: FileTarget) => WriteGroup): {
  start: (file?: FileTarget) => WriteGroup;
  group: () => WriteGroup;
} {
  let started: WriteGroup | undefined;
  return {
    start: (file) => (started = make(file)),
    group: () => {
      if (!started) throw new Error('not started');
      return started;
    },
  };
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('write groups that write their file themselves', () => {
  it('the compressor writes the file; its SHA-256 and size are the stored bytes, and it decodes to the output, also across pauses of the writer', async () => {
    const plan = await planCompression('zstd', 1);
    if (!plan.external) throw new Error('needs the zstd program');
    const s = await store();
    // Pauses between the parts: the reader catches up with the file and must wait for more.
    const script = 'seq 1 200000; sleep 0.3; seq 200001 400000; sleep 0.3; echo THE-END';
    const run = starter((file) =>
      startWriteGroup({ source: program(script), compression: plan, intoFile: file }),
    );
    const info = await commitUnit([s], {}, async (c) => {
      const put = await c.put('unit/obj.zst', run.start);
      await c.verify('unit/obj.zst', run.group().result().storedBytes);
      return put;
    });
    expect(run.group().written).toBeDefined();
    const file = path.join(s.root, 'unit', 'obj.zst');
    const stored = await readFile(file);
    expect(run.group().result()).toMatchObject({ storedBytes: stored.length, storedSha256: sha256(stored) });
    expect(info.size).toBe(stored.length);
    const expected = execFileSync('sh', ['-c', 'seq 1 400000; echo THE-END'], { maxBuffer: 1 << 26 });
    expect(execFileSync('zstd', ['-dc', file], { maxBuffer: 1 << 26 }).equals(expected)).toBe(true);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await walk(s.root)).toEqual(['unit', 'unit/obj.zst']);
  });

  it("the producing program's failure is reported and nothing is left, not even a temporary file", async () => {
    const plan = await planCompression('zstd', 1);
    const s = await store();
    const run = starter((file) =>
      startWriteGroup({
        source: program('seq 1 100000; echo "fatal: it broke" >&2; exit 3'),
        compression: plan,
        intoFile: file,
      }),
    );
    const err = await commitUnit([s], {}, (c) => c.put('unit/obj.zst', run.start)).catch((e: unknown) => e);
    expect(String(err)).toMatch(/producer failed \(exit code 3\): fatal: it broke/);
    expect(run.group().written).toBeDefined();
    expect(await walk(s.root)).toEqual([]);
  });

  it('a failing check (the program never said it completed) keeps nothing', async () => {
    const plan = await planCompression('zstd', 1);
    const s = await store();
    const run = starter((file) =>
      startWriteGroup({
        source: program('seq 1 1000'),
        compression: plan,
        intoFile: file,
        check: () => {
          throw new Error('no "completed OK!"');
        },
      }),
    );
    await expect(commitUnit([s], {}, (c) => c.put('unit/obj.zst', run.start))).rejects.toThrow(
      'no "completed OK!"',
    );
    expect(await walk(s.root)).toEqual([]);
  });

  it('an interrupt while the file grows: exit 130, the programs stopped, nothing left', async () => {
    const plan = await planCompression('zstd', 1);
    const s = await store();
    const controller = new AbortController();
    const run = starter((file) =>
      startWriteGroup({ source: program('seq 1 5000000; exec sleep 60'), compression: plan, intoFile: file }),
    );
    const done = commitUnit([s], { signal: controller.signal }, (c) => c.put('unit/obj.zst', run.start));
    done.catch(() => undefined);
    // Until the compressor's first bytes were read back from the file (it writes a frame per job of several MB).
    await vi.waitFor(() => expect(run.group().storedBytes()).toBeGreaterThan(0), { timeout: 60_000 });
    controller.abort();
    await expect(done).rejects.toBeInstanceOf(InterruptedError);
    for (const p of run.group().processes)
      expect(p.child.exitCode !== null || p.child.signalCode !== null).toBe(true);
    expect(await walk(s.root)).toEqual([]);
  });

  it('a key that exists is refused before any program writes', async () => {
    const plan = await planCompression('zstd', 1);
    const s = await store();
    await commitUnit([s], {}, (c) => c.putSmall('unit/obj.zst', 'older'));
    const make = vi.fn((file?: FileTarget) =>
      startWriteGroup({ source: program('echo hi'), compression: plan, intoFile: file }),
    );
    const err = await commitUnit([s], {}, (c) => c.put('unit/obj.zst', make)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect(make).not.toHaveBeenCalled();
    expect((await readFile(path.join(s.root, 'unit', 'obj.zst'))).toString()).toBe('older');
    expect((await walk(s.root)).filter((f) => f.includes(TEMP_MARKER))).toEqual([]);
  });

  it('encrypted, the bytes pass through this process as before (the cipher runs here): same result, no file offered is used', async () => {
    const plan = await planCompression('zstd', 1);
    const s = await store();
    const { stream, header } = createEncryptStream([keyProtector(randomBytes(32))]);
    const run = starter((file) =>
      startWriteGroup({
        source: program('seq 1 10000'),
        compression: plan,
        encryption: { stream, description: describeEncryption(header) },
        intoFile: file,
      }),
    );
    await commitUnit([s], {}, (c) => c.put('unit/obj.zst.enc', run.start));
    expect(run.group().written).toBeUndefined();
    const stored = await readFile(path.join(s.root, 'unit', 'obj.zst.enc'));
    expect(run.group().result().storedSha256).toBe(sha256(stored));
    expect(await walk(s.root)).toEqual(['unit', 'unit/obj.zst.enc']);
  });

  it('two stores: no file is offered, both get the same bytes through this process', async () => {
    const plan = await planCompression('zstd', 1);
    const [a, b] = [await store(), await store()];
    const make = vi.fn((file?: FileTarget) =>
      startWriteGroup({ source: program('seq 1 10000'), compression: plan, intoFile: file }),
    );
    await commitUnit([a, b], {}, (c) => c.put('obj.zst', make));
    expect(make).toHaveBeenCalledWith(undefined);
    const [x, y] = [
      await readFile(path.join(a.root, 'obj.zst')),
      await readFile(path.join(b.root, 'obj.zst')),
    ];
    expect(x.equals(y)).toBe(true);
  });

  it("a group started after Node.js read some of its program's output refuses to start: those bytes would be lost", async () => {
    const plan = await planCompression('zstd', 1);
    const proc = program('seq 1 1000');
    const out = proc.child.stdout;
    if (!out) throw new Error('no stdout');
    await new Promise((resolve) => out.once('readable', resolve));
    expect(() => startWriteGroup({ source: proc, compression: plan })).toThrow(
      /producer's output was read before its write group started/,
    );
    await proc.done;
  });

  it("the compressor cannot write the file (disk full): that is the error reported, not the backup program's broken pipe; nothing left", async () => {
    const real = await planCompression('zstd', 1);
    // zstd's own words on a full disk, after it read a little. It then lets go of its input before it
    // exits, so the producer's failure (its reader gone) is usually seen first: the compressor is then
    // stopped by the group and judged "stopped", and its stderr still names the cause.
    const plan = {
      ...real,
      external: {
        file: 'sh',
        args: [
          '-c',
          'head -c 100000 >/dev/null; echo "zstd: error 70 : Write error : cannot write block : No space left on device" >&2; exec 0<&-; sleep 2; exit 70',
        ],
        env: process.env,
        name: 'zstd',
      },
    };
    const s = await store();
    const run = starter((file) =>
      startWriteGroup({
        source: program('seq 1 10000000 || { echo "fatal: failed to copy datafile" >&2; exit 1; }'),
        compression: plan,
        intoFile: file,
      }),
    );
    const err = await commitUnit([s], {}, (c) => c.put('unit/obj.zst', run.start)).catch((e: unknown) => e);
    expect(run.group().written).toBeDefined();
    expect(err).toBeInstanceOf(StorageError);
    expect(String(err)).toMatch(
      /The backup file could not be written: the disk is full \(zstd: error 70 : Write error/,
    );
    expect(await walk(s.root)).toEqual([]);
  });
});
