// The case table. One group = one fixture and one kind of operation; its cases run interleaved
// round by round (A B C …, then … C B A) so that drift on the machine hits every case alike.
//
// A case is one of:
//   dbbackup: (c, out) => [...args]   the CLI, spawned without a shell: node bin/dbbackup.js <connection>
//                                --backup-dir <out> <args>; env: (c) => ({...}) adds variables
//   shell: (c, out) => 'cmd'     an anchor, run as bash -o pipefail -c 'cmd'
//   todo: 'text'                 not run (yet); listed in the report
// Optional fields:
//   produces: 'name'    keep the last run's output as artifact `name` (a restore case can need it)
//   needs: ['name']     artifacts this case reads (made untimed by their producer if missing)
//   requires: ['pigz']  programs that must be on PATH, else the case is skipped (reported)
//   env: (c) => ({})    extra environment variables
//   smoke: true         part of `npm run bench:smoke`
//   backupDir: false    (dbbackup) no --backup-dir: the case names its own destination (--cloud)
//   outBytes: async (c, out) => n   what the run stored, when it is not the files in `out` (S3 objects)
//
// Group fields: id, title, engine ('pg' | 'my'), fixtures (which fixtures it needs), db (c => name of the
// database(s) whose size is reported), runs ('runs' | 'runsSmall'), noOutput (restores: no output size), prep (c => void, untimed before every
// run) with prepNote for the report, check (c, caseId => error text or null, untimed after every run), pairs ([dbbackup, anchor]
// rows of the ratio table), targets (goals printed PASS/MISS), kind ('scaling' for the scaling report),
// setup / teardown (async c => void: once per invocation, untimed, before the group's first run and after
// the last group — an emulator, cloned databases), aux (c => [{ pid }]: helper processes such as the S3
// emulator, whose CPU is reported apart, as auxName, and not counted as noise).

import { createBucket, emptyBucket, S3_BUCKET, S3_ENV, s3Uri, startS3Emulator, storedBytes } from './s3.mjs';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { q } from './util.mjs';
import { PITR_GROUPS } from './pitr.mjs';
import { INCR_GROUPS } from './pitr-incr.mjs';

const MD_ARGS = '--single-transaction --quick';

/** dbbackup's logical restore of the MariaDB fixture (in my-restore, and beside the physical restore). */
const myLogicalRestore = (id, label, smoke) => ({
  id,
  label,
  smoke,
  needs: ['my-sql-zst'],
  dbbackup: (c) => [
    'restore',
    'single',
    c.art('my-sql-zst'),
    '--target',
    c.db.myRestore,
    '--clean',
    '--confirm',
  ],
});

/** The databases of the cluster groups, as bash words. */
const clusterDbWords = (c) => Object.keys(c.db.cluster).join(' ');

export const GROUPS = [
  // ---------------------------------------------------------------- PostgreSQL backups
  {
    id: 'pg-backup',
    title: 'PostgreSQL backup of bench_pg',
    engine: 'pg',
    fixtures: ['pg'],
    db: (c) => c.db.pg,
    runs: 'runs',
    cases: [
      {
        id: 'dbb',
        label: 'dbbackup backup single (custom, zstd: default)',
        smoke: true,
        produces: 'pg-custom-zst',
        dbbackup: (c) => ['backup', 'single', c.db.pg, '--no-progress'],
      },
      {
        id: 'dbb-plain',
        label: 'dbbackup backup single --format plain',
        smoke: true,
        produces: 'pg-plain-zst',
        dbbackup: (c) => ['backup', 'single', c.db.pg, '--format', 'plain', '--no-progress'],
      },
      {
        id: 'dbb-gzip',
        label: 'dbbackup backup single --compression-algo gzip',
        smoke: true,
        dbbackup: (c) => ['backup', 'single', c.db.pg, '--compression-algo', 'gzip', '--no-progress'],
      },
      {
        id: 'dbb-nodezstd',
        label: 'dbbackup, no zstd binary (DBBACKUP_NO_EXTERNAL_COMPRESSOR=1: Node zstd)',
        env: () => ({ DBBACKUP_NO_EXTERNAL_COMPRESSOR: '1' }),
        dbbackup: (c) => ['backup', 'single', c.db.pg, '--no-progress'],
      },
      {
        id: 'dbb-encrypt',
        label: 'dbbackup backup single --encrypt --encryption-key-file (AES-256-GCM; on/off pair with dbb)',
        smoke: true,
        produces: 'pg-custom-zst-enc',
        dbbackup: (c) => [
          'backup',
          'single',
          c.db.pg,
          '--no-progress',
          '--encrypt',
          '--encryption-key-file',
          c.keyFile(),
        ],
      },
      {
        id: 'fc',
        label: 'pg_dump -Fc',
        smoke: true,
        produces: 'pg-fc-dump',
        shell: (c, o) => `pg_dump -Fc -f ${o}/c.dump ${c.db.pg}`,
      },
      {
        id: 'fp-gzip',
        label: 'pg_dump -Fp | gzip -6',
        shell: (c, o) => `pg_dump -Fp ${c.db.pg} | gzip -6 > ${o}/p.sql.gz`,
      },
      {
        id: 'fp-pigz',
        label: 'pg_dump -Fp | pigz -6 -p2',
        requires: ['pigz'],
        smoke: true,
        shell: (c, o) => `pg_dump -Fp ${c.db.pg} | pigz -6 -p2 > ${o}/p.sql.gz`,
      },
      {
        id: 'fp-zstd',
        label: 'pg_dump -Fp | zstd -3 -T2',
        smoke: true,
        produces: 'pg-plain-anchor-zst',
        shell: (c, o) => `pg_dump -Fp ${c.db.pg} | zstd -q -3 -T2 > ${o}/p.sql.zst`,
      },
      {
        id: 'fc0-zstd',
        label: 'pg_dump -Fc -Z0 | zstd -3 -T2',
        shell: (c, o) => `pg_dump -Fc -Z0 ${c.db.pg} | zstd -q -3 -T2 > ${o}/c0.dump.zst`,
      },
      { id: 'fd-j2', label: 'pg_dump -Fd -j2', shell: (c, o) => `pg_dump -Fd -j2 -f ${o}/d ${c.db.pg}` },
    ],
    pairs: [
      ['dbb', 'fp-zstd'],
      ['dbb', 'fc0-zstd'],
      ['dbb', 'fc'],
      ['dbb-plain', 'fp-zstd'],
      ['dbb-gzip', 'fp-pigz'],
      ['dbb-gzip', 'fp-gzip'],
      ['dbb-gzip', 'fc'],
      ['dbb-nodezstd', 'fp-zstd'],
      ['dbb-encrypt', 'dbb'],
      ['dbb-encrypt', 'fp-zstd'],
    ],
    targets: [
      {
        a: 'dbb',
        b: ['fp-zstd'],
        ratio: 1.1,
        sizeAtMost: true,
        label: 'default PG backup ≤ 1.1× `pg_dump -Fp | zstd -3 -T2`, output ≤ its size',
      },
      { a: 'dbb-gzip', b: ['fp-pigz'], ratio: 1.0, label: 'gzip mode ≤ 1.0× `pg_dump -Fp | pigz -6 -p2`' },
      {
        a: 'dbb-encrypt',
        b: ['dbb'],
        ratio: 1.05,
        label: 'encryption adds < 5 % to the backup wall time (`--encrypt` vs the same backup without)',
      },
    ],
  },

  // ---------------------------------------------------------------- PostgreSQL restores
  {
    id: 'pg-restore',
    title: 'PostgreSQL restore of bench_pg into an empty database',
    engine: 'pg',
    fixtures: ['pg'],
    db: (c) => c.db.pg,
    runs: 'runs',
    noOutput: true,
    // untimed: an empty target (drop + create), then a checkpoint so the last run's dirty buffers are not billed
    prep: (c) => c.pgPrepRestore(),
    prepNote:
      'Before every run (untimed): the target is dropped and re-created empty, then CHECKPOINT. After every run (untimed): its row counts are compared with the source.',
    check: (c) => c.pgCheckRestore(),
    cases: [
      {
        id: 'dbb-restore',
        label: 'dbbackup restore single (custom .dump.zst)',
        smoke: true,
        needs: ['pg-custom-zst'],
        dbbackup: (c) => [
          'restore',
          'single',
          c.art('pg-custom-zst'),
          '--target',
          c.db.pgRestore,
          '--clean',
          '--confirm',
        ],
      },
      {
        id: 'dbb-restore-j2',
        label: 'dbbackup restore single --jobs 2',
        needs: ['pg-custom-zst'],
        dbbackup: (c) => [
          'restore',
          'single',
          c.art('pg-custom-zst'),
          '--target',
          c.db.pgRestore,
          '--clean',
          '--confirm',
          '--jobs',
          '2',
          '--workdir',
          c.tmp,
        ],
      },
      {
        id: 'dbb-restore-plain',
        label: 'dbbackup restore single (plain .sql.zst)',
        needs: ['pg-plain-zst'],
        dbbackup: (c) => [
          'restore',
          'single',
          c.art('pg-plain-zst'),
          '--target',
          c.db.pgRestore,
          '--clean',
          '--confirm',
        ],
      },
      {
        id: 'dbb-restore-enc',
        label: 'dbbackup restore single (encrypted .dump.zst.enc, --encryption-key-file)',
        smoke: true,
        needs: ['pg-custom-zst-enc'],
        dbbackup: (c) => [
          'restore',
          'single',
          c.art('pg-custom-zst-enc'),
          '--target',
          c.db.pgRestore,
          '--clean',
          '--confirm',
          '--encryption-key-file',
          c.keyFile(),
        ],
      },
      {
        id: 'zstd-pgrestore',
        label: 'zstd -dc <dbbackup .dump.zst> | pg_restore -d',
        smoke: true,
        needs: ['pg-custom-zst'],
        shell: (c) => `zstd -q -dc ${c.art('pg-custom-zst')} | pg_restore -d ${c.db.pgRestore}`,
      },
      {
        id: 'pgrestore-j2',
        label: 'pg_restore -j2 -d (pg_dump -Fc file)',
        needs: ['pg-fc-dump'],
        shell: (c) => `pg_restore -j2 -d ${c.db.pgRestore} ${c.art('pg-fc-dump')}`,
      },
      {
        id: 'zstd-psql',
        label: 'zstd -dc <pg_dump -Fp | zstd file> | psql',
        needs: ['pg-plain-anchor-zst'],
        shell: (c) =>
          `zstd -q -dc ${c.art('pg-plain-anchor-zst')} | psql -X -q -v ON_ERROR_STOP=1 -d ${c.db.pgRestore} -f - > /dev/null`,
      },
    ],
    pairs: [
      ['dbb-restore', 'zstd-pgrestore'],
      ['dbb-restore', 'pgrestore-j2'],
      ['dbb-restore', 'zstd-psql'],
      ['dbb-restore-j2', 'pgrestore-j2'],
      ['dbb-restore-j2', 'zstd-pgrestore'],
      ['dbb-restore-plain', 'zstd-psql'],
      ['dbb-restore-enc', 'dbb-restore'],
      ['dbb-restore-enc', 'zstd-pgrestore'],
    ],
    targets: [
      {
        a: 'dbb-restore',
        b: ['zstd-pgrestore', 'pgrestore-j2', 'zstd-psql'],
        best: true,
        ratio: 1.1,
        label: 'restore ≤ 1.1× best plain PG restore',
      },
      {
        a: 'dbb-restore-j2',
        b: ['zstd-pgrestore', 'pgrestore-j2', 'zstd-psql'],
        best: true,
        ratio: 1.1,
        label: 'restore --jobs 2 ≤ 1.1× best plain PG restore',
      },
    ],
  },

  // ---------------------------------------------------------------- per-object overhead, fixed cost
  {
    id: 'pg-small',
    title: 'PostgreSQL backup of a tiny database and of one with many small tables',
    engine: 'pg',
    fixtures: ['pgTiny', 'pgMany'],
    db: (c) => [c.db.pgTiny, c.db.pgMany],
    runs: 'runsSmall',
    cases: [
      {
        id: 'dbb-tiny',
        label: 'dbbackup backup single bench_pg_tiny',
        smoke: true,
        produces: 'pg-tiny-zst',
        dbbackup: (c) => ['backup', 'single', c.db.pgTiny, '--no-progress'],
      },
      {
        id: 'fc-tiny',
        label: 'pg_dump -Fc bench_pg_tiny',
        smoke: true,
        produces: 'pg-tiny-fc',
        shell: (c, o) => `pg_dump -Fc -f ${o}/tiny.dump ${c.db.pgTiny}`,
      },
      {
        id: 'dbb-many',
        label: 'dbbackup backup single bench_pg_many',
        smoke: true,
        dbbackup: (c) => ['backup', 'single', c.db.pgMany, '--no-progress'],
      },
      {
        id: 'fc-many',
        label: 'pg_dump -Fc bench_pg_many',
        smoke: true,
        shell: (c, o) => `pg_dump -Fc -f ${o}/many.dump ${c.db.pgMany}`,
      },
    ],
    pairs: [
      ['dbb-tiny', 'fc-tiny'],
      ['dbb-many', 'fc-many'],
    ],
    targets: [
      { a: 'dbb-tiny', b: ['fc-tiny'], ratio: 1.5, label: 'tiny PG backup ≤ 1.5× `pg_dump -Fc`' },
      {
        a: 'dbb-many',
        b: ['fc-many'],
        ratio: 1.0,
        label: 'many-table PG backup (2,000 tables; 200 at --scale small) ≤ 1.0× `pg_dump -Fc`',
      },
    ],
  },
  {
    id: 'pg-small-restore',
    title: 'PostgreSQL restore of the tiny database into an empty one',
    engine: 'pg',
    fixtures: ['pgTiny'],
    db: (c) => c.db.pgTiny,
    runs: 'runsSmall',
    noOutput: true,
    prep: (c) => c.pgPrepTarget(c.db.pgTinyRestore),
    prepNote:
      'Both restore the last `pg-small` backup of their tool. Before every run (untimed): bench_pg_tiny_restore is dropped and re-created empty, then CHECKPOINT. After every run (untimed): its row counts and objects are compared with bench_pg_tiny.',
    check: (c) => c.pgCheckCopy(c.db.pgTiny, c.db.pgTinyRestore),
    cases: [
      {
        id: 'dbb-tiny-restore',
        label: 'dbbackup restore single (custom .dump.zst of bench_pg_tiny)',
        smoke: true,
        needs: ['pg-tiny-zst'],
        dbbackup: (c) => [
          'restore',
          'single',
          c.art('pg-tiny-zst'),
          '--target',
          c.db.pgTinyRestore,
          '--clean',
          '--confirm',
        ],
      },
      {
        id: 'pgrestore-tiny',
        label: 'pg_restore -d (pg_dump -Fc file of bench_pg_tiny)',
        smoke: true,
        needs: ['pg-tiny-fc'],
        shell: (c) => `pg_restore -d ${c.db.pgTinyRestore} ${c.art('pg-tiny-fc')}`,
      },
    ],
    pairs: [['dbb-tiny-restore', 'pgrestore-tiny']],
    targets: [
      {
        a: 'dbb-tiny-restore',
        b: ['pgrestore-tiny'],
        ratio: 1.5,
        label: 'tiny PG restore ≤ 1.5× `pg_restore -d`',
      },
    ],
  },
  {
    id: 'pg-pagila',
    title:
      'PostgreSQL backup of a Pagila-like database (schemas, types, partitions, views, functions, triggers…)',
    engine: 'pg',
    fixtures: ['pgPagila'],
    db: (c) => c.db.pgPagila,
    runs: 'runsSmall',
    cases: [
      {
        id: 'dbb-pagila',
        label: 'dbbackup backup single bench_pg_pagila',
        smoke: true,
        produces: 'pg-pagila-zst',
        dbbackup: (c) => ['backup', 'single', c.db.pgPagila, '--no-progress'],
      },
      {
        id: 'fc-pagila',
        label: 'pg_dump -Fc bench_pg_pagila',
        smoke: true,
        produces: 'pg-pagila-fc',
        shell: (c, o) => `pg_dump -Fc -f ${o}/pagila.dump ${c.db.pgPagila}`,
      },
    ],
    pairs: [['dbb-pagila', 'fc-pagila']],
    targets: [
      { a: 'dbb-pagila', b: ['fc-pagila'], ratio: 1.5, label: 'Pagila-like PG backup ≤ 1.5× `pg_dump -Fc`' },
    ],
  },
  {
    id: 'pg-pagila-restore',
    title: 'PostgreSQL restore of the Pagila-like database into an empty one',
    engine: 'pg',
    fixtures: ['pgPagila'],
    db: (c) => c.db.pgPagila,
    runs: 'runsSmall',
    noOutput: true,
    prep: (c) => c.pgPrepTarget(c.db.pgPagilaRestore),
    prepNote:
      'Both restore the last `pg-pagila` backup of their tool. Before every run (untimed): bench_pg_pagila_restore is dropped and re-created empty, then CHECKPOINT. After every run (untimed): the row counts of every table and materialized view, and the numbers of schemas, types, routines, views, triggers, indexes, constraints, sequences and comments, are compared with the source.',
    check: (c) => c.pgCheckCopy(c.db.pgPagila, c.db.pgPagilaRestore),
    cases: [
      {
        id: 'dbb-pagila-restore',
        label: 'dbbackup restore single (custom .dump.zst of bench_pg_pagila)',
        smoke: true,
        needs: ['pg-pagila-zst'],
        dbbackup: (c) => [
          'restore',
          'single',
          c.art('pg-pagila-zst'),
          '--target',
          c.db.pgPagilaRestore,
          '--clean',
          '--confirm',
        ],
      },
      {
        id: 'pgrestore-pagila',
        label: 'pg_restore -d (pg_dump -Fc file of bench_pg_pagila)',
        smoke: true,
        needs: ['pg-pagila-fc'],
        shell: (c) => `pg_restore -d ${c.db.pgPagilaRestore} ${c.art('pg-pagila-fc')}`,
      },
    ],
    pairs: [['dbb-pagila-restore', 'pgrestore-pagila']],
    targets: [
      {
        a: 'dbb-pagila-restore',
        b: ['pgrestore-pagila'],
        ratio: 1.5,
        label: 'Pagila-like PG restore ≤ 1.5× `pg_restore -d`',
      },
    ],
  },

  // ---------------------------------------------------------------- scaling
  {
    id: 'pg-scaling',
    title: 'Scaling: the same dbbackup backup at three sizes (pgbench -i -s N)',
    kind: 'scaling',
    engine: 'pg',
    fixtures: ['pgScaling'],
    runs: 'runs',
    cases: (c) =>
      c.fixtures.scaling.map((s) => ({
        id: `dbb-s${s}`,
        label: `dbbackup backup single bench_pg_scale${s}`,
        scale: s,
        smoke: true,
        dbbackup: () => ['backup', 'single', c.db.pgScale(s), '--no-progress'],
      })),
    pairs: [],
    targets: [],
  },

  // ---------------------------------------------------------------- MariaDB
  {
    id: 'my-backup',
    title: 'MariaDB backup of bench_my',
    engine: 'my',
    fixtures: ['my'],
    db: (c) => c.db.my,
    runs: 'runs',
    cases: [
      {
        id: 'dbb-my',
        label: 'dbbackup --db-type mariadb backup single',
        smoke: true,
        produces: 'my-sql-zst',
        dbbackup: (c) => ['backup', 'single', c.db.my, '--no-progress'],
      },
      {
        id: 'md-gzip',
        label: 'mysqldump --single-transaction --quick | gzip -6',
        shell: (c, o) => `${c.my.dump} ${c.myConn} ${MD_ARGS} ${c.db.my} | gzip -6 > ${o}/my.sql.gz`,
      },
      {
        id: 'md-zstd',
        label: 'mysqldump --single-transaction --quick | zstd -3 -T2',
        smoke: true,
        shell: (c, o) => `${c.my.dump} ${c.myConn} ${MD_ARGS} ${c.db.my} | zstd -q -3 -T2 > ${o}/my.sql.zst`,
      },
      {
        id: 'md-zstd-same',
        label: "mysqldump with dbbackup's flags | zstd -3 -T2 (same bytes as dbbackup)",
        shell: (c, o) =>
          `${c.my.dump} ${c.myConn} ${MD_ARGS} --routines --triggers --events --hex-blob --default-character-set=utf8mb4 --no-tablespaces ${c.db.my} | zstd -q -3 -T2 > ${o}/my-same.sql.zst`,
      },
    ],
    pairs: [
      ['dbb-my', 'md-zstd'],
      ['dbb-my', 'md-zstd-same'],
      ['dbb-my', 'md-gzip'],
    ],
    targets: [
      { a: 'dbb-my', b: ['md-zstd'], ratio: 1.1, label: 'MariaDB backup ≤ 1.1× `mysqldump | zstd -3 -T2`' },
    ],
  },
  {
    id: 'my-restore',
    title: 'MariaDB restore of bench_my into an empty database',
    engine: 'my',
    fixtures: ['my'],
    db: (c) => c.db.my,
    runs: 'runs',
    noOutput: true,
    prep: (c) => c.myPrepRestore(),
    prepNote:
      'Before every run (untimed): DROP DATABASE + CREATE DATABASE … CHARACTER SET utf8mb4. After every run (untimed): its row counts are compared with the source.',
    check: (c) => c.myCheckRestore(),
    cases: [
      myLogicalRestore('dbb-my-restore', 'dbbackup restore single (.sql.zst)', true),
      {
        id: 'zstd-mariadb',
        label: 'zstd -dc <dbbackup .sql.zst> | mariadb',
        smoke: true,
        needs: ['my-sql-zst'],
        shell: (c) => `zstd -q -dc ${c.art('my-sql-zst')} | ${c.my.client} ${c.myConn} ${c.db.myRestore}`,
      },
    ],
    pairs: [['dbb-my-restore', 'zstd-mariadb']],
    targets: [
      {
        a: 'dbb-my-restore',
        b: ['zstd-mariadb'],
        best: true,
        ratio: 1.1,
        label: 'MariaDB restore ≤ 1.1× `zstd -dc | mariadb`',
      },
    ],
  },

  {
    id: 'my-small',
    title: 'MariaDB backup of a tiny database (bench_my_tiny: one table, 100 rows)',
    engine: 'my',
    fixtures: ['myTiny'],
    db: (c) => c.db.myTiny,
    runs: 'runsSmall',
    cases: [
      {
        id: 'dbb-my-tiny',
        label: 'dbbackup --db-type mariadb backup single bench_my_tiny',
        smoke: true,
        produces: 'my-tiny-sql-zst',
        dbbackup: (c) => ['backup', 'single', c.db.myTiny, '--no-progress'],
      },
      {
        id: 'md-zstd-tiny',
        label: 'mysqldump --single-transaction --quick | zstd -3 -T2',
        smoke: true,
        shell: (c, o) =>
          `${c.my.dump} ${c.myConn} ${MD_ARGS} ${c.db.myTiny} | zstd -q -3 -T2 > ${o}/tiny.sql.zst`,
      },
    ],
    pairs: [['dbb-my-tiny', 'md-zstd-tiny']],
    targets: [
      {
        a: 'dbb-my-tiny',
        b: ['md-zstd-tiny'],
        ratio: 1.5,
        label: 'tiny MariaDB backup ≤ 1.5× `mysqldump | zstd -3 -T2`',
      },
    ],
  },
  {
    id: 'my-small-restore',
    title: 'MariaDB restore of the tiny database into an empty one',
    engine: 'my',
    fixtures: ['myTiny'],
    db: (c) => c.db.myTiny,
    runs: 'runsSmall',
    noOutput: true,
    prep: (c) => c.myPrepTarget(c.db.myTinyRestore),
    prepNote:
      'Both read the same file, the last `my-small/dbb-my-tiny` backup. Before every run (untimed): DROP DATABASE + CREATE DATABASE bench_my_tiny_restore … CHARACTER SET utf8mb4. After every run (untimed): its row count is compared with bench_my_tiny.',
    check: (c) => c.myCheckItems(c.db.myTiny, c.db.myTinyRestore),
    cases: [
      {
        id: 'dbb-my-tiny-restore',
        label: 'dbbackup restore single (.sql.zst of bench_my_tiny)',
        smoke: true,
        needs: ['my-tiny-sql-zst'],
        dbbackup: (c) => [
          'restore',
          'single',
          c.art('my-tiny-sql-zst'),
          '--target',
          c.db.myTinyRestore,
          '--clean',
          '--confirm',
        ],
      },
      {
        id: 'zstd-mariadb-tiny',
        label: 'zstd -dc <dbbackup .sql.zst> | mariadb',
        smoke: true,
        needs: ['my-tiny-sql-zst'],
        shell: (c) =>
          `zstd -q -dc ${c.art('my-tiny-sql-zst')} | ${c.my.client} ${c.myConn} ${c.db.myTinyRestore}`,
      },
    ],
    pairs: [['dbb-my-tiny-restore', 'zstd-mariadb-tiny']],
    targets: [
      {
        a: 'dbb-my-tiny-restore',
        b: ['zstd-mariadb-tiny'],
        ratio: 1.5,
        label: 'tiny MariaDB restore ≤ 1.5× `zstd -dc | mariadb`',
      },
    ],
  },

  // ---------------------------------------------------------------- MariaDB physical (whole server)
  {
    id: 'my-physical',
    title: 'MariaDB physical backup of the whole server (mariadb-backup), into a binlog archive',
    engine: 'my',
    fixtures: ['my'],
    db: (c) => c.db.my,
    runs: 'runs',
    cases: [
      {
        id: 'dbb-phys',
        label: 'dbbackup backup physical',
        smoke: true,
        requires: ['mariadb-backup'],
        produces: 'my-phys',
        dbbackup: (c, o) => ['backup', 'physical', '--archive', `${o}/archive`, '--no-progress'],
      },
      {
        id: 'xb-zstd',
        label: 'mariadb-backup --backup --stream=xbstream | zstd -3 -T2',
        smoke: true,
        requires: ['mariadb-backup'],
        shell: (c, o) =>
          `mkdir -p ${o}/t && mariadb-backup ${c.myConn} --backup --stream=xbstream --target-dir=${o}/t 2>${o}/xb.log | zstd -q -3 -T2 > ${o}/backup.xb.zst`,
      },
    ],
    pairs: [['dbb-phys', 'xb-zstd']],
    targets: [
      {
        a: 'dbb-phys',
        b: ['xb-zstd'],
        ratio: 1.1,
        label: 'MariaDB backup physical ≤ 1.1× `mariadb-backup --stream=xbstream | zstd -3 -T2`',
      },
    ],
  },
  {
    id: 'my-physical-restore',
    title:
      'MariaDB physical restore (the whole server, into a new data directory) against the same by hand, and against the logical restore of bench_my',
    engine: 'my',
    fixtures: ['my'],
    db: (c) => c.db.my,
    runs: 'runs',
    noOutput: true,
    setup: async (c) => {
      // Under the system temp dir: the server's user (mysql) must reach it (bench/work may sit in a 0700 home).
      c.physDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dbbackup-bench-phys-'));
      fs.chmodSync(c.physDir, 0o755);
    },
    teardown: async (c) => {
      if (c.physDir) fs.rmSync(c.physDir, { recursive: true, force: true });
    },
    prep: (c) => {
      fs.rmSync(path.join(c.physDir, 'data'), { recursive: true, force: true });
      fs.rmSync(path.join(c.physDir, 'work'), { recursive: true, force: true });
      c.myPrepRestore();
    },
    prepNote:
      'Before every run (untimed): the data directory removed, DROP + CREATE of the logical target. After every run (untimed): the physical restores must hold bench_my; the logical one its row counts.',
    check: (c, id) =>
      id === 'dbb-my-restore-logical'
        ? c.myCheckRestore()
        : fs.existsSync(path.join(c.physDir, 'data', c.db.my))
          ? null
          : `no ${c.db.my} in the restored data directory`,
    cases: [
      {
        id: 'dbb-phys-restore',
        label: 'dbbackup restore pitr <physical> --confirm (extract, prepare, move back)',
        smoke: true,
        requires: ['mariadb-backup'],
        needs: ['my-phys'],
        dbbackup: (c) => [
          'restore',
          'pitr',
          'latest',
          '--archive',
          c.art('my-phys'),
          '--data-dir',
          path.join(c.physDir, 'data'),
          '--confirm',
        ],
      },
      {
        id: 'phys-by-hand',
        label: 'zstd -dc | mbstream -x; mariadb-backup --prepare; --move-back',
        requires: ['mariadb-backup'],
        needs: ['my-phys'],
        shell: (c) => {
          const w = path.join(c.physDir, 'work');
          const d = path.join(c.physDir, 'data');
          const xb = `$(ls ${c.art('my-phys')}/physical/*/backup.xb.zst | head -1)`;
          return `mkdir -p ${w} ${d} && zstd -q -dc ${xb} | mbstream -x -C ${w} && mariadb-backup --defaults-file=${w}/backup-my.cnf --prepare --target-dir=${w} 2>/dev/null && mariadb-backup --defaults-file=${w}/backup-my.cnf --move-back --target-dir=${w} --datadir=${d} 2>/dev/null`;
        },
      },
      myLogicalRestore(
        'dbb-my-restore-logical',
        'dbbackup restore single (.sql.zst of bench_my): the logical restore',
        false,
      ),
    ],
    pairs: [
      ['dbb-phys-restore', 'phys-by-hand'],
      ['dbb-phys-restore', 'dbb-my-restore-logical'],
    ],
  },

  // ---------------------------------------------------------------- S3 target
  {
    id: 'pg-backup-s3',
    title:
      'PostgreSQL backup of bench_pg to an S3 emulator (fauxqs on this machine) and to a local directory',
    engine: 'pg',
    fixtures: ['pg'],
    db: (c) => c.db.pg,
    runs: 'runs',
    // once: the emulator in a child process, objects stored as files under bench/work/s3, and the bucket
    setup: async (c) => {
      c.s3 = await startS3Emulator(c.work);
      await createBucket(c.s3);
    },
    teardown: async (c) => {
      await c.s3?.stop();
      c.s3 = null;
    },
    prep: (c) => emptyBucket(c.s3),
    prepNote:
      'The S3 emulator (fauxqs, a Node process on this machine that stores objects as files) is started once before the group; before every run (untimed) its bucket is emptied. Its CPU shares the 2 cores with the backup — a real S3 endpoint would not — and is reported below the table, not in the cpu column.',
    aux: (c) => (c.s3 ? [{ pid: c.s3.pid, reaps: false }] : []),
    auxName: 'the S3 emulator (fauxqs)',
    cases: [
      {
        id: 'dbb-local',
        label: 'dbbackup backup single → local directory (the default: custom, zstd)',
        smoke: true,
        dbbackup: (c) => ['backup', 'single', c.db.pg, '--no-progress'],
      },
      {
        id: 'dbb-s3',
        label: 'dbbackup backup single --cloud s3://…?endpoint= (emulator, 8 MiB parts)',
        smoke: true,
        backupDir: false,
        env: () => S3_ENV,
        outBytes: (c) => storedBytes(c.s3),
        dbbackup: (c) => [
          '--cloud-part-size',
          '8',
          'backup',
          'single',
          c.db.pg,
          '--no-progress',
          '--cloud',
          s3Uri(c.s3, 'pg/'),
        ],
      },
      {
        id: 'fc0-zstd-s3',
        smoke: true,
        label: 'pg_dump -Fc -Z0 | zstd -3 -T2 | SDK multipart upload (bench/lib/s3-put.mjs, 8 MiB parts)',
        env: () => S3_ENV,
        outBytes: (c) => storedBytes(c.s3),
        shell: (c) =>
          `pg_dump -Fc -Z0 ${c.db.pg} | zstd -q -3 -T2 | ${q(process.execPath)} bench/lib/s3-put.mjs ${c.s3.endpoint} ${S3_BUCKET} anchor/c0.dump.zst`,
      },
      {
        id: 'fc0-zstd',
        smoke: true,
        label: 'pg_dump -Fc -Z0 | zstd -3 -T2 > local file',
        shell: (c, o) => `pg_dump -Fc -Z0 ${c.db.pg} | zstd -q -3 -T2 > ${o}/c0.dump.zst`,
      },
    ],
    pairs: [
      ['dbb-s3', 'dbb-local'],
      ['dbb-s3', 'fc0-zstd-s3'],
      ['dbb-local', 'fc0-zstd'],
    ],
    targets: [
      {
        a: 'dbb-s3',
        b: ['dbb-local'],
        ratio: 1.1,
        label: 'upload to the S3 emulator adds ≤ 10 % wall time over the same backup to a local directory',
      },
    ],
  },

  // ---------------------------------------------------------------- cluster
  {
    id: 'pg-cluster',
    title: 'PostgreSQL cluster backup: globals + copies of the fixture databases (bench_cl_*)',
    engine: 'pg',
    fixtures: ['pg', 'pgTiny', 'pgMany'],
    db: (c) => Object.keys(c.db.cluster),
    runs: 'runs',
    setup: (c) => c.pgCloneCluster(),
    prepNote:
      'The `bench_cl_*` databases are copies of bench_pg, bench_pg_tiny and bench_pg_many (CREATE DATABASE … TEMPLATE, once per invocation, untimed; the smoke run leaves out bench_pg); `--include-database "bench_cl_*"` limits the cluster backup to them, the shell equivalents name them.',
    cases: [
      {
        id: 'dbb-cluster',
        label: 'dbbackup backup cluster (2 databases at a time: the default on 2 cores)',
        smoke: true,
        produces: 'pg-cluster',
        dbbackup: () => ['backup', 'cluster', '--include-database', 'bench_cl_*'],
      },
      {
        id: 'dbb-cluster-p1',
        smoke: true,
        label: 'dbbackup backup cluster --cluster-parallelism 1',
        dbbackup: () => [
          'backup',
          'cluster',
          '--include-database',
          'bench_cl_*',
          '--cluster-parallelism',
          '1',
        ],
      },
      {
        id: 'seq-fc',
        smoke: true,
        label: 'pg_dumpall --globals-only; pg_dump -Fc per database, in sequence',
        shell: (c, o) =>
          `pg_dumpall --globals-only > ${o}/globals.sql && for d in ${clusterDbWords(c)}; do pg_dump -Fc -f ${o}/$d.dump $d || exit 1; done`,
      },
      {
        id: 'seq-zstd',
        smoke: true,
        label: 'pg_dumpall --globals-only; pg_dump -Fc -Z0 | zstd -3 -T2 per database, in sequence',
        shell: (c, o) =>
          `pg_dumpall --globals-only > ${o}/globals.sql && for d in ${clusterDbWords(c)}; do pg_dump -Fc -Z0 $d | zstd -q -3 -T2 > ${o}/$d.dump.zst || exit 1; done`,
      },
      {
        id: 'par-zstd',
        label: 'the same, 2 databases at a time (xargs -P2)',
        smoke: true,
        shell: (c, o) =>
          `pg_dumpall --globals-only > ${o}/globals.sql && printf '%s\\n' ${clusterDbWords(c)} | ` +
          `xargs -P2 -I{} bash -o pipefail -c 'pg_dump -Fc -Z0 "$1" | zstd -q -3 -T2 > "$2/$1.dump.zst"' _ {} ${o}`,
      },
    ],
    pairs: [
      ['dbb-cluster', 'par-zstd'],
      ['dbb-cluster', 'seq-zstd'],
      ['dbb-cluster', 'seq-fc'],
      ['dbb-cluster-p1', 'seq-zstd'],
    ],
    targets: [],
  },
  {
    id: 'pg-cluster-restore',
    title: 'PostgreSQL cluster restore (globals + the bench_cl_* databases) onto the server without them',
    engine: 'pg',
    fixtures: ['pg', 'pgTiny', 'pgMany'],
    db: (c) => Object.keys(c.db.cluster),
    runs: 'runs',
    noOutput: true,
    prep: (c) => c.pgDropCluster(),
    prepNote:
      'Both sides read the same files, the last `pg-cluster/dbb-cluster` backup. Before every run (untimed): the `bench_cl_*` databases are dropped, then CHECKPOINT. After every run (untimed): their row and table counts are compared with the fixtures they were copied from.',
    check: (c) => c.pgCheckCluster(),
    cases: [
      {
        id: 'dbb-restore-cluster',
        label: 'dbbackup restore cluster --confirm (2 databases at a time: the default)',
        smoke: true,
        needs: ['pg-cluster'],
        dbbackup: (c) => ['restore', 'cluster', c.art('pg-cluster'), '--confirm'],
      },
      {
        id: 'seq-restore',
        smoke: true,
        label:
          'zstd -dc globals | psql; zstd -dc <db>.dump.zst | pg_restore --create, per database in sequence',
        needs: ['pg-cluster'],
        shell: (c) =>
          `cd ${c.art('pg-cluster')} && { zstd -q -dc globals.sql.zst | psql -X -q -d postgres > /dev/null 2>&1; } && ` +
          `for f in *.dump.zst; do zstd -q -dc "$f" | pg_restore --create -d postgres || exit 1; done`,
      },
      {
        id: 'par-restore',
        label: 'the same, 2 databases at a time (xargs -P2)',
        smoke: true,
        needs: ['pg-cluster'],
        shell: (c) =>
          `cd ${c.art('pg-cluster')} && { zstd -q -dc globals.sql.zst | psql -X -q -d postgres > /dev/null 2>&1; } && ` +
          `ls *.dump.zst | xargs -P2 -I{} bash -o pipefail -c 'zstd -q -dc "$1" | pg_restore --create -d postgres' _ {}`,
      },
    ],
    pairs: [
      ['dbb-restore-cluster', 'par-restore'],
      ['dbb-restore-cluster', 'seq-restore'],
    ],
    targets: [
      {
        a: 'dbb-restore-cluster',
        b: ['par-restore', 'seq-restore'],
        best: true,
        ratio: 1.1,
        label: 'cluster restore ≤ 1.1× best plain cluster restore (same files)',
      },
    ],
  },
  ...PITR_GROUPS,
  ...INCR_GROUPS,
];

/** Peak-RSS goals, evaluated over every dbbackup case that ran. */
export const RSS_TARGET_MB = 150;
