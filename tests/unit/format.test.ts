import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { detectDump, parsePgDumpHeader } from '../../src/catalog/format.js';

const PG_RESTORE = '/usr/lib/postgresql/15/bin/pg_restore';

/** libpq-style archive int: a sign byte, then |value| in `size` little-endian bytes. */
function pgInt(value: number, size = 4): Buffer {
  const buf = Buffer.alloc(1 + size);
  buf[0] = value < 0 ? 1 : 0;
  let abs = Math.abs(value);
  for (let i = 0; i < size; i++) {
    buf[1 + i] = abs % 256;
    abs = Math.floor(abs / 256);
  }
  return buf;
}

function pgStr(value: string | null, size = 4): Buffer {
  if (value === null) return pgInt(-1, size);
  const bytes = Buffer.from(value, 'utf8');
  return Buffer.concat([pgInt(bytes.length, size), bytes]);
}

interface HeaderSpec {
  vmin: number;
  intSize?: number;
  database: string | null;
  server: string | null;
  dump: string | null;
}

/** A custom-format header as pg_backup_archiver.c WriteHead lays it out. */
function pgHeader(spec: HeaderSpec): Buffer {
  const size = spec.intSize ?? 4;
  const parts = [
    Buffer.from('PGDMP', 'latin1'),
    Buffer.from([1, spec.vmin, 0, size, 8, 1]), // vmaj, vmin, vrev, intSize, offSize, format=custom
    // 1.15+ stores the compression algorithm as one byte; older archives store the level as an int.
    spec.vmin >= 15 ? Buffer.from([0]) : pgInt(-1, size),
    // creation time: sec, min, hour, mday, mon, year, isdst
    ...[0, 30, 1, 29, 2, 126, 0].map((v) => pgInt(v, size)),
    pgStr(spec.database, size),
    pgStr(spec.server, size),
    pgStr(spec.dump, size),
  ];
  return Buffer.concat(parts);
}

const SERVER = '15.19 (Debian 15.19-0+deb12u1)';

describe('parsePgDumpHeader', () => {
  it('uses a synthetic header that pg_restore itself accepts', () => {
    // The fixture is only worth something if it is laid out like the real thing: header + empty TOC.
    const dir = mkdtempSync(path.join(os.tmpdir(), 'dbbackup-unit-'));
    try {
      const file = path.join(dir, 'synthetic.dump');
      writeFileSync(
        file,
        Buffer.concat([pgHeader({ vmin: 14, database: 'shop', server: SERVER, dump: SERVER }), pgInt(0)]),
      );
      const r = spawnSync(PG_RESTORE, ['--list', file], {
        encoding: 'utf8',
        env: { ...process.env, TZ: 'UTC' },
      });
      expect(r.stderr).toBe('');
      expect(r.stdout).toContain('dbname: shop');
      expect(r.stdout).toContain(`Dumped from database version: ${SERVER}`);
      expect(r.stdout).toContain('Archive created at 2026-03-29 01:30:00');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads an archive 1.14 header (compression level as an int)', () => {
    const head = pgHeader({ vmin: 14, database: 'shop', server: SERVER, dump: SERVER });
    expect(parsePgDumpHeader(head)).toEqual({
      archiveVersion: '1.14',
      database: 'shop',
      serverVersion: SERVER,
      dumpVersion: SERVER,
    });
  });

  it('reads an archive 1.15 header (compression algorithm as a byte)', () => {
    const head = pgHeader({ vmin: 15, database: 'données 🐘', server: '16.4', dump: '17.2' });
    expect(parsePgDumpHeader(head)).toEqual({
      archiveVersion: '1.15',
      database: 'données 🐘',
      serverVersion: '16.4',
      dumpVersion: '17.2',
    });
  });

  it('reads 8-byte ints, NULL strings, and ignores what follows the header', () => {
    const head = Buffer.concat([
      pgHeader({ vmin: 16, intSize: 8, database: 'x', server: null, dump: '17.0' }),
      Buffer.from('TOC entries follow…'),
    ]);
    expect(parsePgDumpHeader(head)).toEqual({
      archiveVersion: '1.16',
      database: 'x',
      serverVersion: null,
      dumpVersion: '17.0',
    });
  });
});

describe('detectDump', () => {
  it('classifies a custom-format archive and returns its header', () => {
    const head = pgHeader({ vmin: 14, database: 'shop', server: SERVER, dump: SERVER });
    const detected = detectDump(head);
    expect(detected.engine).toBe('postgres');
    expect(detected.format).toBe('custom');
    expect(detected.pgHeader?.database).toBe('shop');
    expect(detected.pgHeader?.dumpVersion).toBe(SERVER);
  });

  it('still says postgres/custom, without header facts, for every truncation of the header', () => {
    const full = pgHeader({ vmin: 15, database: 'shop', server: SERVER, dump: SERVER });
    for (let cut = 5; cut < full.length; cut++) {
      const detected = detectDump(full.subarray(0, cut));
      expect(detected.engine, `cut at ${cut}`).toBe('postgres');
      expect(detected.format).toBe('custom');
      expect(detected.pgHeader, `cut at ${cut}`).toBeUndefined();
    }
  });

  it('recognises plain PostgreSQL dumps', () => {
    const text = [
      '--',
      '-- PostgreSQL database dump',
      '--',
      '',
      '\\restrict a1b2c3',
      '',
      '-- Dumped from database version 15.19 (Debian 15.19-0+deb12u1)',
      'SET statement_timeout = 0;',
    ].join('\n');
    expect(detectDump(Buffer.from(text))).toEqual({ engine: 'postgres', format: 'plain' });
  });

  it('recognises MySQL and MariaDB dumps, with or without the comment header', () => {
    const mysql = '-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)\n--\n-- Host: localhost\n';
    const mariadb =
      '/*M!999999\\- enable the sandbox mode */ \n-- MariaDB dump 10.19-11.4.2-MariaDB, for debian-linux-gnu (x86_64)\n--\n';
    const noComments =
      '/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;\nDROP TABLE IF EXISTS `t`;\n';
    for (const text of [mysql, mariadb, noComments]) {
      expect(detectDump(Buffer.from(text)), text).toEqual({ engine: 'mysql', format: 'plain' });
    }
  });

  it('returns no engine for anything else', () => {
    const garbage = [
      Buffer.alloc(0),
      Buffer.from('PGDM'),
      Buffer.from('pgdmp lowercase'),
      Buffer.from([0x1f, 0x8b, 0x08, 0x00]), // still gzip-compressed
      Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), // still zstd-compressed
      Buffer.from('{"schema":"dbbackup.backup"}'),
      Buffer.from('-- just a comment\nSELECT 1;\n'),
      Buffer.from("SELECT '-- PostgreSQL database dump';\n"),
      Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 251)),
    ];
    for (const head of garbage)
      expect(detectDump(head), head.toString('hex', 0, 16)).toEqual({ engine: null, format: null });
  });
});
