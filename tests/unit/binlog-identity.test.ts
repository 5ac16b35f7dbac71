import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SafetyError, UsageError } from '../../src/errors.js';
import {
  claimBinlogArchive,
  openBinlogArchive,
  prepareBinlogArchive,
  type BinlogServer,
} from '../../src/pitr/binlog/identity.js';
import { LocalStorage } from '../../src/storage/local/local.js';
import { tempDir } from './helpers.js';

/**
 * A binlog archive's identity in two steps, so that a physical backup can start before the server
 * has answered: prepare (compression and keys, from the archive when it exists) needs no server;
 * claim binds it to the server (refusing another server's archive) or creates archive.json.
 */

const server = (serverId: number): BinlogServer => ({
  serverId,
  hostname: 'db1',
  port: 3306,
  basename: 'mysql-bin',
  version: '10.11.19',
});
const zstd3 = { algorithm: 'zstd' as const, level: 3 };

let dir: string;
let cleanup: () => Promise<void>;
let storage: LocalStorage;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
  storage = new LocalStorage(dir);
});
afterEach(() => cleanup());

describe('binlog archive identity: prepare, then claim', () => {
  it('a new archive: prepared from the options without writing anything, created by the claim', async () => {
    const prepared = await prepareBinlogArchive(storage, { compression: zstd3, flags: {} });
    expect(prepared).toMatchObject({ existing: undefined, compression: zstd3, protectors: [] });
    await expect(readFile(path.join(dir, 'archive.json'))).rejects.toThrow(/ENOENT/);
    const { identity, created } = await claimBinlogArchive(storage, prepared, {
      engine: 'mariadb',
      server: server(7),
    });
    expect(created).toBe(true);
    expect(JSON.parse(await readFile(path.join(dir, 'archive.json'), 'utf8'))).toEqual(identity);
  });

  it("an existing archive: its own compression wins over the options', and another server's claim is refused", async () => {
    await openBinlogArchive(storage, { engine: 'mariadb', server: server(7), compression: zstd3, flags: {} });
    const prepared = await prepareBinlogArchive(storage, {
      compression: { algorithm: 'gzip', level: 6 },
      flags: {},
    });
    expect(prepared.compression).toEqual(zstd3);
    await expect(
      claimBinlogArchive(storage, prepared, { engine: 'mariadb', server: server(7) }),
    ).resolves.toMatchObject({
      created: false,
    });
    const other = claimBinlogArchive(storage, prepared, { engine: 'mariadb', server: server(8) });
    await expect(other).rejects.toBeInstanceOf(SafetyError);
    await expect(other).rejects.toThrow(/server_id 8.* is not the one archived in .*server_id 7/);
  });

  it('two first uses at once: the second claim takes what the first wrote (its compression, for the caller to judge)', async () => {
    const a = await prepareBinlogArchive(storage, { compression: zstd3, flags: {} });
    const b = await prepareBinlogArchive(storage, {
      compression: { algorithm: 'gzip', level: 6 },
      flags: {},
    });
    await claimBinlogArchive(storage, a, { engine: 'mariadb', server: server(7) });
    const second = await claimBinlogArchive(storage, b, { engine: 'mariadb', server: server(7) });
    expect(second).toMatchObject({ created: false, identity: { compression: zstd3 } });
  });

  it('a PostgreSQL WAL archive is refused before anything else', async () => {
    await writeFile(path.join(dir, 'archive.json'), JSON.stringify({ schema: 'dbbackup.wal-archive' }));
    await expect(prepareBinlogArchive(storage, { compression: zstd3, flags: {} })).rejects.toBeInstanceOf(
      UsageError,
    );
  });
});
