// PITR groups of the case table: a throwaway PostgreSQL cluster of the machine's own version (16 MiB
// segments, as in production) archiving through the CLI under test, loaded with pgbench; then
// `backup base` vs `pg_basebackup | zstd`, `restore pitr` vs extracting that tar, and WAL push
// throughput (one process per segment, local and to the S3 emulator, and the async uploader),
// plus the archiver under pgbench at full speed (the .ready backlog sampled every second).
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createBucket, emptyBucket, S3_ENV, s3Uri, startS3Emulator } from './s3.mjs';
import { log, mkdirp, q, rmrf, sh, trySh } from './util.mjs';

const PG_BIN = '/usr/lib/postgresql/15/bin';
const isRoot = process.getuid?.() === 0;

/** Runs a PostgreSQL server program as the server user (postgres when we are root). */
function asPg(file, args, opts = {}) {
  return isRoot ? sh('runuser', ['-u', 'postgres', '--', file, ...args], opts) : sh(file, args, opts);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Directories and files the server user must own. */
function givePg(...paths) {
  if (isRoot) for (const p of paths) sh('chown', ['-R', 'postgres:', p]);
}

/**
 * The cluster, archive and raw segments, made once per invocation (the cluster is kept between
 * invocations in <work>/pitr when its scale matches, and only restarted).
 */
export async function ensurePitr(c) {
  if (c.pitr) return c.pitr;
  const dir = path.join(c.work, 'pitr');
  const data = path.join(dir, 'data');
  const archive = path.join(dir, 'archive');
  const scale =
    c.cfg.fixtures.pitrScale ??
    (c.cfg.smoke || c.cfg.scale === 'small' ? 2 : c.cfg.scale === 'full' ? 50 : 2);
  const marker = path.join(dir, `scale-${scale}`);
  const port = await freePort();
  const cli = (args, opts = {}) =>
    sh(process.execPath, [c.cfg.dbbackup, ...args], { timeoutMs: 1_800_000, ...opts });
  const conn = ['--host', '127.0.0.1', '--port', String(port), '--user', 'postgres'];
  const pgEnv = {
    ...process.env,
    PGHOST: '127.0.0.1',
    PGPORT: String(port),
    PGUSER: 'postgres',
    PGDATABASE: 'bench',
  };
  const fresh = !fs.existsSync(marker);
  if (fresh) {
    rmrf(dir);
    mkdirp(dir);
    givePg(dir);
    log(`  (untimed) PITR cluster: initdb, pgbench -i -s ${scale}`);
    asPg(path.join(PG_BIN, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync']);
    fs.appendFileSync(
      path.join(data, 'postgresql.conf'),
      `\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '${dir}'\nmax_wal_size = 1GB\ncheckpoint_timeout = 5min\n`,
    );
  }
  fs.appendFileSync(path.join(data, 'postgresql.conf'), `port = ${port}\n`);
  asPg(path.join(PG_BIN, 'pg_ctl'), ['-D', data, '-l', path.join(dir, 'server.log'), '-w', 'start']);
  if (fresh) {
    mkdirp(archive);
    givePg(archive);
    cli([...conn, 'pitr', 'enable', '--archive', archive]);
    asPg(path.join(PG_BIN, 'pg_ctl'), [
      '-D',
      data,
      '-l',
      path.join(dir, 'server.log'),
      '-w',
      '-m',
      'fast',
      'restart',
    ]);
    sh('psql', ['-X', '-q', '-d', 'postgres', '-c', 'CREATE DATABASE bench'], { env: pgEnv });
    sh('pgbench', ['-i', '-q', '-s', String(scale), 'bench'], { env: pgEnv, timeoutMs: 1_800_000 });
    // WAL for the push cases: 16 complete segments (4 in the smoke run), kept raw.
    sh('pgbench', ['-n', '-c', '2', '-j', '2', '-T', '20', 'bench'], { env: pgEnv, timeoutMs: 600_000 });
    sh('psql', ['-X', '-q', '-d', 'postgres', '-c', 'SELECT pg_switch_wal()'], { env: pgEnv });
    const segs = mkdirp(path.join(dir, 'segs'));
    const current = sh(
      'psql',
      ['-X', '-A', '-t', '-d', 'postgres', '-c', 'SELECT pg_walfile_name(pg_current_wal_lsn())'],
      { env: pgEnv },
    );
    const names = fs
      .readdirSync(path.join(data, 'pg_wal'))
      .filter((n) => /^[0-9A-F]{24}$/.test(n) && n < current)
      .sort()
      .slice(-16);
    for (const n of names) fs.copyFileSync(path.join(data, 'pg_wal', n), path.join(segs, n));
    givePg(segs);
    // The restore cases read one base backup of each kind, made untimed.
    cli([...conn, 'backup', 'base', '--archive', archive, '--no-progress']);
    mkdirp(path.join(dir, 'anchor'));
    sh(
      'bash',
      [
        '-o',
        'pipefail',
        '-c',
        `pg_basebackup -D - -Ft -X none -c fast | zstd -q -3 -T2 > ${q(path.join(dir, 'anchor', 'base.tar.zst'))}`,
      ],
      { env: pgEnv },
    );
    fs.writeFileSync(marker, '');
  }
  const baseName = fs.readdirSync(path.join(archive, 'base')).sort()[0];
  const segs = fs.readdirSync(path.join(dir, 'segs')).sort();
  c.pitr = {
    dir,
    data,
    archive,
    port,
    conn,
    pgEnv,
    baseName,
    segs: (c.cfg.smoke ? segs.slice(0, 4) : segs).map((n) => path.join(dir, 'segs', n)),
    pushArchive: path.join(dir, 'push-archive'),
    restoreDir: path.join(dir, 'restore', 'data'),
  };
  return c.pitr;
}

export function stopPitr(c) {
  if (!c.pitr) return;
  trySh(isRoot ? 'runuser' : path.join(PG_BIN, 'pg_ctl'), [
    ...(isRoot ? ['-u', 'postgres', '--', path.join(PG_BIN, 'pg_ctl')] : []),
    '-D',
    c.pitr.data,
    '-m',
    'fast',
    '-w',
    'stop',
  ]);
  c.pitr = undefined;
}

/** An empty archive of the cluster (its identity only), for the push cases. */
function resetPushArchive(p) {
  rmrf(p.pushArchive);
  mkdirp(p.pushArchive);
  // Owned by the harness's user, who runs the pushes (root must not write into an archive postgres owns).
  fs.copyFileSync(path.join(p.archive, 'archive.json'), path.join(p.pushArchive, 'archive.json'));
}

/** A pg_wal-like directory with every push segment marked ready, for the async cases. */
function resetSpool(p) {
  const wal = path.join(p.dir, 'async', 'pg_wal');
  // A leftover uploader would serve the next run from outside the measured process tree.
  const pidFile = path.join(p.dir, 'async', 'spool', 'uploader.pid');
  const pid = Number(trySh('cat', [pidFile]) ?? 0);
  if (pid > 0) trySh('kill', [String(pid)]);
  rmrf(path.join(p.dir, 'async'));
  mkdirp(path.join(wal, 'archive_status'));
  for (const s of p.segs) {
    fs.copyFileSync(s, path.join(wal, path.basename(s)));
    fs.writeFileSync(path.join(wal, 'archive_status', `${path.basename(s)}.ready`), '');
  }
}

const pushLoop = (c, args) =>
  `for f in ${c.pitr.segs.map(q).join(' ')}; do ${q(process.execPath)} ${q(c.cfg.dbbackup)} wal push "$f" ${args} || exit 1; done`;

const asyncLoop = (c, args) => {
  const wal = path.join(c.pitr.dir, 'async', 'pg_wal');
  return `cd ${q(wal)} && for f in ${c.pitr.segs.map((s) => q(path.basename(s))).join(' ')}; do ${q(process.execPath)} ${q(c.cfg.dbbackup)} wal push "$f" ${args} --async --spool-dir ${q(path.join(c.pitr.dir, 'async', 'spool'))} || exit 1; done`;
};

const restoreArgs = (c) => [
  'restore',
  'pitr',
  c.pitr.baseName,
  '--archive',
  c.pitr.archive,
  '--data-dir',
  c.pitr.restoreDir,
  '--target-immediate',
  '--confirm',
];

const dirBytes = (dir) => Number(trySh('du', ['-sb', dir])?.split(/\s/)[0] ?? NaN);

export const PITR_GROUPS = [
  {
    id: 'pitr-base',
    title: 'PostgreSQL physical base backup (pgbench fixture in a throwaway cluster archiving with dbbackup)',
    engine: 'pg',
    fixtures: [],
    runs: 'runs',
    connection: (c) => ({ args: c.pitr.conn, env: {} }),
    setup: (c) => ensurePitr(c),
    teardown: (c) => stopPitr(c),
    prep: (c) => {
      for (const n of fs.readdirSync(path.join(c.pitr.archive, 'base')))
        if (n !== c.pitr.baseName) rmrf(path.join(c.pitr.archive, 'base', n));
    },
    prepNote:
      'Before every run (untimed): base backups made by earlier runs are removed from the archive. Both sides wait for the WAL of the backup to be archived (by the same dbbackup archive_command).',
    cases: [
      {
        id: 'dbb-base',
        label: 'dbbackup backup base (zstd -3, into the archive)',
        smoke: true,
        backupDir: false,
        dbbackup: (c) => ['backup', 'base', '--archive', c.pitr.archive, '--no-progress'],
        outBytes: (c) =>
          dirBytes(path.join(c.pitr.archive, 'base')) -
          dirBytes(path.join(c.pitr.archive, 'base', c.pitr.baseName)),
      },
      {
        id: 'bb-zstd',
        label: 'pg_basebackup -D - -Ft -X none -c fast | zstd -3 -T2',
        smoke: true,
        shell: (c, o) =>
          `PGHOST=127.0.0.1 PGPORT=${c.pitr.port} PGUSER=postgres pg_basebackup -D - -Ft -X none -c fast | zstd -q -3 -T2 > ${o}/base.tar.zst`,
      },
    ],
    pairs: [['dbb-base', 'bb-zstd']],
    targets: [
      {
        a: 'dbb-base',
        b: ['bb-zstd'],
        ratio: 1.1,
        label: 'backup base ≤ 1.10× `pg_basebackup -Ft -X none | zstd -3 -T2`',
      },
    ],
  },
  {
    id: 'pitr-restore',
    title: 'PostgreSQL restore of a base backup into a new data directory',
    engine: 'pg',
    fixtures: [],
    runs: 'runs',
    noOutput: true,
    connection: (c) => ({ args: c.pitr.conn, env: {} }),
    setup: (c) => ensurePitr(c),
    teardown: (c) => stopPitr(c),
    prep: (c) => {
      const pid = trySh('head', ['-1', path.join(c.pitr.restoreDir, 'postmaster.pid')]);
      if (pid) trySh('kill', ['-QUIT', pid]);
      rmrf(path.dirname(c.pitr.restoreDir));
      mkdirp(path.dirname(c.pitr.restoreDir));
      givePg(path.dirname(c.pitr.restoreDir));
    },
    prepNote:
      'Before every run (untimed): the target directory is removed (and a server started there by the --start case stopped). dbbackup verifies the SHA-256 while it streams and extracts as the server user; the anchor extracts as root.',
    cases: [
      {
        id: 'dbb-restore',
        label: 'dbbackup restore pitr <base> --target-immediate --confirm (extraction + recovery settings)',
        smoke: true,
        backupDir: false,
        dbbackup: (c) => restoreArgs(c),
      },
      {
        id: 'dbb-restore-start',
        label: 'the same with --start (until the server is promoted at the end of the backup: + WAL replay)',
        backupDir: false,
        dbbackup: (c) => [...restoreArgs(c), '--start', '--port', String(c.pitr.port + 1)],
      },
      {
        id: 'tar-x',
        label: 'zstd -dc base.tar.zst | tar -x (the pg_basebackup tar)',
        smoke: true,
        shell: (c) =>
          `mkdir -p ${q(c.pitr.restoreDir)} && zstd -dc ${q(path.join(c.pitr.dir, 'anchor', 'base.tar.zst'))} | tar -x -C ${q(c.pitr.restoreDir)}`,
      },
    ],
    pairs: [
      ['dbb-restore', 'tar-x'],
      ['dbb-restore-start', 'tar-x'],
    ],
    targets: [
      {
        a: 'dbb-restore',
        b: ['tar-x'],
        ratio: 1.1,
        label: 'restore pitr ≤ 1.10× extracting the tar (plus WAL replay: see dbb-restore-start)',
      },
    ],
  },
  {
    id: 'pitr-push',
    title: 'WAL push: 16 segments of 16 MiB (4 in the smoke run), one archive_command call each',
    engine: 'pg',
    fixtures: [],
    runs: 'runs',
    connection: (c) => ({ args: c.pitr.conn, env: {} }),
    setup: async (c) => {
      await ensurePitr(c);
      c.pitrS3 = await startS3Emulator(path.join(c.work, 'pitr-s3'));
      await createBucket(c.pitrS3);
    },
    teardown: async (c) => {
      await c.pitrS3?.stop();
      c.pitrS3 = undefined;
      stopPitr(c);
    },
    aux: (c) => (c.pitrS3 ? [{ pid: c.pitrS3.pid, reaps: false }] : []),
    auxName: 'the S3 emulator (fauxqs)',
    prep: async (c) => {
      resetPushArchive(c.pitr);
      resetSpool(c.pitr);
      await emptyBucket(c.pitrS3);
      const { PutObjectCommand } = await import('@aws-sdk/client-s3');
      await c.pitrS3.client.send(
        new PutObjectCommand({
          Bucket: 'bench',
          Key: 'pitr/archive.json',
          Body: fs.readFileSync(path.join(c.pitr.archive, 'archive.json')),
        }),
      );
    },
    prepNote:
      'Before every run (untimed): an empty archive (its archive.json only) and, for --async, a pg_wal with every segment marked .ready and no uploader running. The async uploader is detached from the command (as under PostgreSQL): its CPU is not in the cpu column, its time is in the wall column.',
    cases: [
      {
        id: 'dbb-push',
        label: 'dbbackup wal push (sync, local archive; zstd -1 in process, SHA-256, fsync)',
        smoke: true,
        shell: (c) => pushLoop(c, `--archive ${q(c.pitr.pushArchive)}`),
        outBytes: (c) => dirBytes(path.join(c.pitr.pushArchive, 'wal')),
      },
      {
        id: 'dbb-push-s3',
        label: 'dbbackup wal push (sync, S3 emulator)',
        env: () => S3_ENV,
        shell: (c) => pushLoop(c, `--archive ${q(s3Uri(c.pitrS3, 'pitr/'))}`),
      },
      {
        id: 'dbb-push-async-s3',
        label: 'dbbackup wal push --async (S3 emulator; the uploader pushes 2 at a time)',
        env: () => S3_ENV,
        shell: (c) => asyncLoop(c, `--archive ${q(s3Uri(c.pitrS3, 'pitr/'))}`),
      },
      {
        id: 'zstd-cp',
        label: 'plain archive_command: zstd -1 into the archive directory, then sync',
        smoke: true,
        shell: (c, o) =>
          `for f in ${c.pitr.segs.map(q).join(' ')}; do zstd -q -1 -c "$f" > ${o}/"$(basename "$f")".zst && sync ${o}/"$(basename "$f")".zst || exit 1; done`,
      },
    ],
    pairs: [
      ['dbb-push', 'zstd-cp'],
      ['dbb-push-s3', 'dbb-push'],
      ['dbb-push-async-s3', 'dbb-push-s3'],
    ],
    targets: [],
  },
  {
    id: 'pitr-load',
    title: 'The archiver under pgbench at full speed (sync dbbackup archive_command, local archive)',
    engine: 'pg',
    fixtures: [],
    runs: 'runs',
    noOutput: true,
    connection: (c) => ({ args: c.pitr.conn, env: {} }),
    setup: (c) => ensurePitr(c),
    teardown: (c) => stopPitr(c),
    prepNote:
      'pgbench -c 2 -j 2 for 30 s (10 s in the smoke run) while the .ready backlog is sampled every second into the log; the check fails when the backlog at the end is more than 4 files above its peak in the first half (a growing backlog).',
    check: (c) => {
      const samples = fs
        .readFileSync(path.join(c.pitr.dir, 'backlog.txt'), 'utf8')
        .trim()
        .split('\n')
        .map(Number)
        .filter(Number.isFinite);
      const half = samples.slice(0, Math.ceil(samples.length / 2));
      const end = samples.at(-1) ?? 0;
      log(`  pitr-load: .ready backlog samples ${samples.join(' ')} (max ${Math.max(...samples)})`);
      return end > Math.max(...half) + 4 ? `the .ready backlog grew to ${end}` : null;
    },
    cases: [
      {
        id: 'pgbench-archiving',
        label: 'pgbench -c 2 -j 2 with archiving (seconds of pgbench; backlog in the log)',
        smoke: true,
        shell: (c) => {
          const status = path.join(c.pitr.data, 'pg_wal', 'archive_status');
          const secs = c.cfg.smoke ? 10 : 30;
          return (
            `( while :; do ls ${q(status)} | grep -c '\\.ready$'; sleep 1; done ) > ${q(path.join(c.pitr.dir, 'backlog.txt'))} & S=$!; ` +
            `PGHOST=127.0.0.1 PGPORT=${c.pitr.port} PGUSER=postgres pgbench -n -c 2 -j 2 -T ${secs} bench; R=$?; kill $S; exit $R`
          );
        },
      },
    ],
    pairs: [],
    targets: [],
  },
];
