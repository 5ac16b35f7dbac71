import { existsSync } from 'node:fs';
import { readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StorageError } from '../../src/errors.js';
import { CommitGate } from '../../src/pipeline/hash.js';
import { LocalStorage, makeDirs, TEMP_MARKER, WRITE_BEHIND_BYTES } from '../../src/storage/local/local.js';
import { putBuffer, readAll } from '../../src/storage/storage.js';
import { random, tempDir } from './helpers.js';

/** Every file under `dir`, relative, recursively. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

/** A body that yields some data and then fails, like a dump tool dying mid-way. */
function failingBody(): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent++ < 3) this.push(random(64 * 1024));
      else this.destroy(new Error('pg_dump died'));
    },
  });
}

let dir: string;
let cleanup: () => Promise<void>;
let storage: LocalStorage;

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
  storage = new LocalStorage(dir);
});
afterEach(() => cleanup());

describe('LocalStorage.put', () => {
  it('stores the bytes under the key and reports their size', async () => {
    const data = random(3 * 1024 * 1024 + 5);
    const info = await storage.put('db/x.dump', Readable.from([data]));
    expect(info.key).toBe('db/x.dump');
    expect(info.size).toBe(data.length);
    expect((await readFile(path.join(dir, 'db', 'x.dump'))).equals(data)).toBe(true);
    expect(await filesUnder(dir)).toEqual([path.join('db', 'x.dump')]);
  });

  it('a file longer than the write-behind step (synced in the background as it grows) is stored whole', async () => {
    // 1 MiB chunks, so that several background syncs start while later chunks are still written.
    const chunks = Array.from({ length: (2 * WRITE_BEHIND_BYTES) / (1024 * 1024) + 3 }, () =>
      random(1024 * 1024),
    );
    const data = Buffer.concat(chunks);
    const info = await storage.put('big.dump', Readable.from(chunks));
    expect(info.size).toBe(data.length);
    expect((await readFile(path.join(dir, 'big.dump'))).equals(data)).toBe(true);
    expect(await filesUnder(dir)).toEqual(['big.dump']);
  });

  it('leaves nothing behind, not even a temp file, when the body fails mid-way', async () => {
    await expect(storage.put('db/x.dump', failingBody())).rejects.toThrow(/pg_dump died/);
    expect(await storage.stat('db/x.dump')).toBeUndefined();
    expect(await filesUnder(dir)).toEqual([]);
  });

  it('keeps the previous object intact when a replacing write fails', async () => {
    await putBuffer(storage, 'x.dump', 'the good backup');
    await expect(storage.put('x.dump', failingBody())).rejects.toThrow();
    expect((await readAll(storage, 'x.dump')).toString()).toBe('the good backup');
    expect(await filesUnder(dir)).toEqual(['x.dump']);
  });

  it('commits nothing when a CommitGate check fails at the end', async () => {
    const gate = new CommitGate(() => Promise.reject(new Error('dump tool exited 1')));
    Readable.from([random(200_000)]).pipe(gate);
    await expect(storage.put('x.sql', gate)).rejects.toThrow('dump tool exited 1');
    expect(await filesUnder(dir)).toEqual([]);
  });

  // BUG (src/storage/local/local.ts, put): noOverwrite is checked with stat() before the write starts,
  // and rename() replaces silently, so two writers that both start before either finishes both
  // "succeed" and the second silently replaces the first (two backups of one database started in
  // the same second get the same key). Remove `.fails` once the commit step is no-clobber.
  it('noOverwrite holds for two concurrent writers of the same key', async () => {
    const a = new PassThrough();
    const b = new PassThrough();
    const first = storage.put('x.dump', a, { noOverwrite: true });
    const second = storage.put('x.dump', b, { noOverwrite: true });
    await new Promise((r) => setTimeout(r, 50));
    a.end('first');
    await first;
    b.end('second');
    await expect(second).rejects.toBeInstanceOf(StorageError);
  });

  it('creates files 0600 and directories 0700', async () => {
    await putBuffer(storage, 'a/b/x.dump', 'secret data');
    expect((await stat(path.join(dir, 'a', 'b', 'x.dump'))).mode & 0o777).toBe(0o600);
    expect((await stat(path.join(dir, 'a', 'b'))).mode & 0o777).toBe(0o700);
  });
});

describe('LocalStorage keys', () => {
  it('refuses keys that leave the directory', async () => {
    for (const key of ['../x.dump', 'a/../../x.dump', '..', '/etc/passwd', 'a/../../../tmp/x']) {
      expect(() => storage.localPath(key), key).toThrow(StorageError);
      await expect(putBuffer(storage, key, 'x'), key).rejects.toBeInstanceOf(StorageError);
      await expect(storage.get(key), key).rejects.toBeInstanceOf(StorageError);
      await expect(storage.delete(key), key).rejects.toBeInstanceOf(StorageError);
    }
    expect(existsSync(path.join(path.dirname(dir), 'x.dump'))).toBe(false);
  });

  it('allows harmless dots inside a key', async () => {
    await putBuffer(storage, 'a/./b/../c.dump', 'x');
    expect((await readAll(storage, 'a/c.dump')).toString()).toBe('x');
  });

  // BUG (src/storage/local/local.ts, localPath): a key that normalises to '.' ('', '.', 'x/..') maps to the
  // store's own directory; put() then writes its temp file in the parent directory, and when the
  // store directory does not exist yet, renames it into place: the store becomes a file.
  it('refuses keys that name the store itself', async () => {
    const fresh = new LocalStorage(path.join(dir, 'store'));
    await expect(putBuffer(fresh, 'x/..', 'data')).rejects.toBeInstanceOf(StorageError);
    expect(existsSync(path.join(dir, 'store'))).toBe(false);
  });
});

// Reading, ranges, listing by prefix, deleting and noOverwrite are the storage contract's
// (tests/contract/storage.test.ts), run against this backend and every cloud one; what follows is
// only what a directory does differently: files and modes on disk, temp files, keys as paths.
describe('LocalStorage.list', () => {
  const keys = ['a.dump', 'x/b.dump', 'x/y/c.dump', 'x/yz.dump', 'xy/d.dump', 'x/y/z/e.sql'];
  const listed = async (prefix?: string): Promise<string[]> => {
    const out: string[] = [];
    for await (const info of storage.list(prefix)) out.push(info.key);
    return out.sort();
  };

  beforeEach(async () => {
    for (const key of keys) await putBuffer(storage, key, key);
  });

  it('includes leftover temp files so they can be reported', async () => {
    await writeFile(path.join(dir, 'x', `${TEMP_MARKER}abc123-b.dump`), 'partial');
    expect(await listed('x/')).toContain(`x/${TEMP_MARKER}abc123-b.dump`);
  });
});

describe('makeDirs (mkdir -p that cannot spin)', () => {
  // Node's recursive mkdir loops forever on these; each case must fail fast with a clear message.
  it('creates every missing level with the mode, and accepts what exists', async () => {
    const root = dir;
    await makeDirs(path.join(root, 'a', 'b', 'c'), 0o700);
    expect((await stat(path.join(root, 'a', 'b', 'c'))).mode & 0o777).toBe(0o700);
    await makeDirs(path.join(root, 'a', 'b'), 0o700);
  });

  it('names a dangling symbolic link (a backup disk that is not mounted)', async () => {
    const root = dir;
    const link = path.join(root, 'backups');
    await symlink(path.join(root, 'not-mounted', 'backups'), link);
    await expect(makeDirs(path.join(link, 'x'), 0o700)).rejects.toThrow(
      `${link} is a symbolic link to ${path.join(root, 'not-mounted', 'backups')}, which does not exist`,
    );
    await expect(makeDirs(link, 0o700)).rejects.toBeInstanceOf(StorageError);
  });

  it('refuses a place that cannot hold directories (/proc) and a file in the way', async () => {
    await expect(makeDirs('/proc/dbbackup-test/x', 0o700)).rejects.toThrow('/proc cannot hold directories');
    const root = dir;
    await writeFile(path.join(root, 'file'), 'x');
    await expect(makeDirs(path.join(root, 'file', 'sub'), 0o700)).rejects.toThrow('is not a directory');
  });
});
