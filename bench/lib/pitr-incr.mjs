// Incremental base backups (docs/incremental.md) on the PITR cluster of pitr.mjs: after ~1 % of
// pgbench_accounts' rows changed (a contiguous range, untimed), `backup base --incremental`
// against a full `backup base` — stored size and wall time — and `restore pitr` of full + that
// incremental against the full alone.
import fs from 'node:fs';
import path from 'node:path';
import { ensurePitr, stopPitr } from './pitr.mjs';
import { mkdirp, rmrf, sh, trySh } from './util.mjs';

const isRoot = process.getuid?.() === 0;
const givePg = (p) => isRoot && sh('chown', ['-R', 'postgres:', p]);
const dirBytes = (dir) => Number(trySh('du', ['-sb', dir])?.split(/\s/)[0] ?? NaN);
const psql = (c, sql) =>
  sh('psql', ['-X', '-q', '-A', '-t', '-d', 'bench', '-c', sql], {
    env: c.pitr.pgEnv,
    timeoutMs: 600_000,
  }).trim();
const cli = (c, args) =>
  sh(process.execPath, [c.cfg.dbbackup, ...c.pitr.conn, ...args], { timeoutMs: 1_800_000 });
const bases = (c) => fs.readdirSync(path.join(c.pitr.archive, 'base')).sort();
const newestBase = (c) => bases(c).at(-1);

let round = 0;
/** ~1 % of the accounts, a contiguous range that moves every call (so each is a fresh change). */
function touchOnePercent(c) {
  const n = Number(psql(c, 'SELECT count(*) FROM pgbench_accounts'));
  const span = Math.max(1, Math.floor(n / 100));
  const from = (round++ * span * 7) % Math.max(1, n - span);
  psql(
    c,
    `UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid > ${from} AND aid <= ${from + span}`,
  );
  psql(c, 'CHECKPOINT');
}

/** Only the fixture's own base backup stays, then a new full (untimed): the incremental's parent. */
function freshFull(c) {
  for (const n of bases(c)) if (n !== c.pitr.baseName) rmrf(path.join(c.pitr.archive, 'base', n));
  cli(c, ['backup', 'base', '--archive', c.pitr.archive, '--no-progress']);
}

/** A chain made once per invocation for the restore cases: full, 1 % changed, incremental. */
function ensureChain(c) {
  const have =
    c.pitr.chain &&
    c.pitr.chain.every((n) => fs.existsSync(path.join(c.pitr.archive, 'base', n, 'meta.json')));
  if (have) return c.pitr.chain;
  freshFull(c);
  const full = newestBase(c);
  touchOnePercent(c);
  cli(c, ['backup', 'base', '--incremental', '--archive', c.pitr.archive, '--no-progress']);
  c.pitr.chain = [full, newestBase(c)];
  return c.pitr.chain;
}

const restoreArgs = (c, name) => [
  'restore',
  'pitr',
  name,
  '--archive',
  c.pitr.archive,
  '--data-dir',
  c.pitr.restoreDir,
  '--target-immediate',
  '--confirm',
];

export const INCR_GROUPS = [
  {
    id: 'pitr-incr',
    title: 'PostgreSQL incremental base backup after ~1 % of the rows changed, against a full',
    engine: 'pg',
    fixtures: [],
    runs: 'runs',
    connection: (c) => ({ args: c.pitr.conn, env: {} }),
    setup: (c) => ensurePitr(c),
    teardown: (c) => stopPitr(c),
    prep: (c) => {
      freshFull(c);
      touchOnePercent(c);
    },
    prepNote:
      'Before every run (untimed): base backups of earlier runs removed, a new full taken, then 1 % of pgbench_accounts updated (a contiguous range of aid, different each run) and a CHECKPOINT.',
    cases: [
      {
        id: 'dbb-incr',
        label: 'dbbackup backup base --incremental (pages changed since the full, zstd -3)',
        smoke: true,
        backupDir: false,
        dbbackup: (c) => ['backup', 'base', '--incremental', '--archive', c.pitr.archive, '--no-progress'],
        outBytes: (c) => dirBytes(path.join(c.pitr.archive, 'base', newestBase(c))),
      },
      {
        id: 'dbb-full',
        label: 'dbbackup backup base (a full, zstd -3)',
        smoke: true,
        backupDir: false,
        dbbackup: (c) => ['backup', 'base', '--archive', c.pitr.archive, '--no-progress'],
        outBytes: (c) => dirBytes(path.join(c.pitr.archive, 'base', newestBase(c))),
      },
    ],
    pairs: [['dbb-incr', 'dbb-full']],
    targets: [
      {
        a: 'dbb-incr',
        b: ['dbb-full'],
        ratio: 0.3,
        label: 'incremental ≤ 0.30× the wall time of a full (size: see out)',
      },
    ],
  },
  {
    id: 'pitr-incr-restore',
    title: 'PostgreSQL restore of full + one incremental against the full alone',
    engine: 'pg',
    fixtures: [],
    runs: 'runs',
    noOutput: true,
    connection: (c) => ({ args: c.pitr.conn, env: {} }),
    setup: (c) => ensurePitr(c),
    teardown: (c) => stopPitr(c),
    prep: (c) => {
      ensureChain(c);
      rmrf(path.dirname(c.pitr.restoreDir));
      mkdirp(path.dirname(c.pitr.restoreDir));
      givePg(path.dirname(c.pitr.restoreDir));
    },
    prepNote:
      'Once (untimed): a full, 1 % of the accounts updated, an incremental. Before every run: the target directory removed.',
    cases: [
      {
        id: 'dbb-restore-chain',
        label:
          'dbbackup restore pitr <incremental> --target-immediate --confirm (full extracted, then the delta applied)',
        smoke: true,
        backupDir: false,
        dbbackup: (c) => restoreArgs(c, ensureChain(c)[1]),
      },
      {
        id: 'dbb-restore-full',
        label: 'dbbackup restore pitr <its full> --target-immediate --confirm',
        smoke: true,
        backupDir: false,
        dbbackup: (c) => restoreArgs(c, ensureChain(c)[0]),
      },
    ],
    pairs: [['dbb-restore-chain', 'dbb-restore-full']],
    targets: [
      {
        a: 'dbb-restore-chain',
        b: ['dbb-restore-full'],
        ratio: 1.2,
        label: 'restore full + incremental ≤ 1.20× the full alone',
      },
    ],
  },
];
