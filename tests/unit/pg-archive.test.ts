import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PgArchiveWalk, type PgArchiveVerdict } from '../../src/catalog/pg-archive.js';

/**
 * The archive walk that replaced the `pg_restore --list` read-back of a backup (issue 16). The
 * synthetic archives are laid out as pg_dump streams one (WriteHead, WriteToc, then the data blocks
 * of pg_backup_custom.c); the first test proves that layout against pg_restore itself, which reads
 * every data block when it writes the archive out as SQL.
 */
const PG_RESTORE = '/usr/lib/postgresql/15/bin/pg_restore';

function pgInt(value: number): Buffer {
  const buf = Buffer.alloc(5);
  buf[0] = value < 0 ? 1 : 0;
  buf.writeUInt32LE(Math.abs(value), 1);
  return buf;
}

function pgStr(value: string | null): Buffer {
  if (value === null) return pgInt(-1);
  const bytes = Buffer.from(value, 'utf8');
  return Buffer.concat([pgInt(bytes.length), bytes]);
}

interface Entry {
  id: number;
  desc: string;
  tag: string;
  section: number;
  defn: string;
  copy?: string;
  data?: boolean;
  deps?: number[];
}

const ENTRIES: Entry[] = [
  { id: 1, desc: 'ENCODING', tag: 'ENCODING', section: 1, defn: "SET client_encoding = 'UTF8';\n" },
  {
    id: 2,
    desc: 'STDSTRINGS',
    tag: 'STDSTRINGS',
    section: 1,
    defn: "SET standard_conforming_strings = 'on';\n",
  },
  { id: 200, desc: 'TABLE', tag: 't', section: 2, defn: 'CREATE TABLE public.t (id integer);\n' },
  {
    id: 3000,
    desc: 'TABLE DATA',
    tag: 't',
    section: 3,
    defn: '',
    copy: 'COPY public.t (id) FROM stdin;\n',
    data: true,
    deps: [200],
  },
  { id: 3001, desc: 'BLOBS', tag: 'BLOBS', section: 3, defn: '', data: true },
];

/** A streamed (offsets not set) custom archive of version 1.`minor`, with `rows` rows in t. */
function archive(minor: number, rows = 3): Buffer {
  const head = [
    Buffer.from('PGDMP', 'latin1'),
    Buffer.from([1, minor, 0, 4, 8, 1]),
    minor >= 15 ? Buffer.from([0]) : pgInt(0),
    ...[0, 30, 1, 29, 2, 126, 0].map(pgInt),
    pgStr('shop'),
    pgStr('15.20'),
    pgStr('15.20'),
    pgInt(ENTRIES.length),
  ];
  const toc = ENTRIES.flatMap((e) => [
    pgInt(e.id),
    pgInt(e.data ? 1 : 0),
    pgStr('0'),
    pgStr(String(e.id + 16384)),
    pgStr(e.tag),
    pgStr(e.desc),
    pgInt(e.section),
    pgStr(e.defn),
    pgStr(''),
    pgStr(e.copy ?? ''),
    pgStr(e.section === 1 ? null : 'public'),
    pgStr(''),
    ...(minor >= 14 ? [pgStr(e.desc === 'TABLE' ? 'heap' : null)] : []),
    ...(minor >= 16 ? [pgInt(e.desc === 'TABLE' ? 114 : 0)] : []),
    pgStr('postgres'),
    pgStr('false'),
    ...(e.deps ?? []).map((d) => pgStr(String(d))),
    pgStr(null),
    Buffer.from([e.data ? 1 : 3]),
    Buffer.alloc(8),
  ]);
  const copy = Buffer.from(Array.from({ length: rows }, (_, i) => `${i + 1}\n`).join('') + '\\.\n\n', 'utf8');
  const table = [Buffer.from([1]), pgInt(3000), pgInt(copy.length), copy, pgInt(0)];
  const lo = Buffer.from('a large object');
  const blobs = [Buffer.from([3]), pgInt(3001), pgInt(16500), pgInt(lo.length), lo, pgInt(0), pgInt(0)];
  return Buffer.concat([...head, ...toc, ...table, ...blobs]);
}

function walk(buf: Buffer, step: number): PgArchiveVerdict {
  const w = new PgArchiveWalk();
  for (let i = 0; i < buf.length; i += step) w.push(buf.subarray(i, i + step));
  return w.end();
}

describe('PgArchiveWalk', () => {
  it('uses a synthetic archive that pg_restore reads to its end', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'dbbackup-unit-'));
    try {
      const file = path.join(dir, 'synthetic.dump');
      writeFileSync(file, archive(14));
      const r = spawnSync(PG_RESTORE, ['-f', '-', file], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.stdout).toContain('COPY public.t (id) FROM stdin;\n1\n2\n3\n\\.');
      // The large object's bytes, as pg_restore writes them out (lowrite of a bytea literal).
      expect(r.stdout).toContain(`'\\x${Buffer.from('a large object').toString('hex')}'`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each([12, 14, 15, 16])('accepts a whole archive 1.%i, however it is cut into chunks', (minor) => {
    const buf = archive(minor);
    for (const step of [1, 3, 64, buf.length]) {
      expect(walk(buf, step), `chunks of ${step}`).toEqual({
        state: 'valid',
        entries: ENTRIES.length,
        dataBlocks: 2,
        dumpVersion: '15.20',
      });
    }
  });

  it('fails every archive cut short, wherever the cut falls', () => {
    const buf = archive(14);
    for (let cut = 0; cut < buf.length; cut++)
      expect(walk(buf.subarray(0, cut), 7).state, `cut at ${cut} of ${buf.length}`).toBe('invalid');
  });

  it('skips a large chunk of table data without holding it', () => {
    const verdict = walk(archive(14, 200_000), 65536);
    expect(verdict.state).toBe('valid');
  });

  it('fails a data block for an entry without data, and one given twice', () => {
    const buf = archive(14);
    const blobs = buf.lastIndexOf(Buffer.concat([Buffer.from([3]), pgInt(3001)]));
    const unknown = Buffer.from(buf);
    pgInt(9999).copy(unknown, blobs + 1);
    expect(walk(unknown, 64)).toMatchObject({ state: 'invalid', problem: expect.stringContaining('9999') });
    const twice = Buffer.concat([buf, buf.subarray(blobs)]);
    expect(walk(twice, 64)).toMatchObject({ state: 'invalid', problem: expect.stringContaining('twice') });
  });

  it('reports an archive version it does not know as unknown (the caller reads it back instead)', () => {
    expect(walk(archive(17), 64).state).toBe('unknown');
  });

  it('fails what is not a custom archive', () => {
    expect(walk(Buffer.from('--\n-- PostgreSQL database dump\n--\n'), 64).state).toBe('invalid');
  });
});
