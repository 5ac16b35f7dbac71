// The case table. One group = one fixture and one kind of operation; its cases run interleaved
// round by round (A B C …, then … C B A) so that drift on the machine hits every case alike.
//
// A case is one of:
//   dbbackup: (c) => [...args]   the CLI, spawned without a shell: node bin/dbbackup.js <connection>
//                                --backup-dir <out> <args>; env: (c) => ({...}) adds variables
//   shell: (c, out) => 'cmd'     an anchor, run as bash -o pipefail -c 'cmd'
//   todo: 'text'                 not run (yet); listed in the report
// Optional fields:
//   produces: 'name'    keep the last run's output as artifact `name` (a restore case can need it)
//   needs: ['name']     artifacts this case reads (made untimed by their producer if missing)
//   requires: ['pigz']  programs that must be on PATH, else the case is skipped (reported)
//   env: (c) => ({})    extra environment variables
//   smoke: true         part of `npm run bench:smoke`
//
// Group fields: id, title, engine ('pg' | 'my'), fixtures (which fixtures it needs), db (c => name of the
// database(s) whose size is reported), runs ('runs' | 'runsSmall'), noOutput (restores: no output size), prep (c => void, untimed before every
// run) with prepNote for the report, check (c, caseId => error text or null, untimed after every run), pairs ([dbbackup, anchor]
// rows of the ratio table), targets (goals printed PASS/MISS), kind ('scaling' for the scaling report).
//
// Adding a later feature is one entry: e.g. encryption is a dbbackup case with '--encrypt…' in its args
// plus a pair; an S3 target is a group whose cases pass --backup-dir s3://… (see the TODO entries).

const MD_ARGS = '--single-transaction --quick';

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
        label: 'dbbackup backup single --encrypt (on/off pair with dbb)',
        todo: 'not benchmarked yet (the CLI had no encryption option when this was written): put its flags in the args and add the pair [dbb-encrypt, dbb]',
        dbbackup: (c) => [
          'backup',
          'single',
          c.db.pg,
          '--no-progress',
          '--encrypt-key-file',
          `${c.work}/bench.key`,
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

  // ---------------------------------------------------------------- per-object overhead
  {
    id: 'pg-small',
    title: 'PostgreSQL: a tiny database and one with many small tables',
    engine: 'pg',
    fixtures: ['pgTiny', 'pgMany'],
    db: (c) => [c.db.pgTiny, c.db.pgMany],
    runs: 'runsSmall',
    cases: [
      {
        id: 'dbb-tiny',
        label: 'dbbackup backup single bench_pg_tiny',
        smoke: true,
        dbbackup: (c) => ['backup', 'single', c.db.pgTiny, '--no-progress'],
      },
      {
        id: 'fc-tiny',
        label: 'pg_dump -Fc bench_pg_tiny',
        smoke: true,
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
    targets: [],
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
      {
        id: 'dbb-my-restore',
        label: 'dbbackup restore single (.sql.zst)',
        smoke: true,
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
      },
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

  // ---------------------------------------------------------------- later: TODO hooks, not run
  {
    id: 'pg-backup-s3',
    title: 'PostgreSQL backup of bench_pg to an S3 emulator',
    todo:
      'not benchmarked yet: start a local S3 emulator (127.0.0.1 only) in the group prep, then cases ' +
      '`dbbackup backup single bench_pg --cloud s3://bench/pg/` vs `pg_dump -Fp | zstd -3 -T2 | <upload to the emulator>`',
    engine: 'pg',
    fixtures: ['pg'],
    runs: 'runs',
    cases: [],
    pairs: [],
    targets: [],
  },
  {
    id: 'pg-cluster',
    title: 'PostgreSQL cluster backup (all databases + globals)',
    todo:
      'not benchmarked yet: `dbbackup backup cluster` (and --cluster-parallelism 2) vs `pg_dumpall --globals-only` ' +
      'plus `pg_dump -Fc -Z0 | zstd -3 -T2` per database; `restore cluster` likewise',
    engine: 'pg',
    fixtures: ['pg', 'pgTiny', 'pgMany'],
    runs: 'runs',
    cases: [],
    pairs: [],
    targets: [],
  },
];

/** Peak-RSS goals, evaluated over every dbbackup case that ran. */
export const RSS_TARGET_MB = 150;
