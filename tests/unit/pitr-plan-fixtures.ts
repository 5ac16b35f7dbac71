import type { BinlogRestorePlan } from '../../src/pitr/binlog/restore-plan.js';
import type { PitrRestorePlan } from '../../src/pitr/restore.js';

/** Plans as planPitrRestore / planBinlogRestore make them, with every optional part present. */
export const PG_PLAN: PitrRestorePlan = {
  archive: '/srv/wal-archive',
  base: {
    name: 'base_20261207_050000',
    finishedAt: '2026-12-07T05:01:02Z',
    timeline: 1,
    startLsn: '0/2000028',
    stopLsn: '0/2000100',
    storedBytes: 3 * 1024 * 1024,
    dataBytes: 40 * 1024 * 1024,
    sha256: 'ab'.repeat(32),
    checksum: 'verified while it streams in',
  },
  chain: {
    members: [
      {
        name: 'base_20261207_050000',
        backupType: 'full',
        finishedAt: '2026-12-07T05:01:02Z',
        files: [{ key: 'base/x/base.tar.zst', sha256: 'cd'.repeat(32), sizeBytes: 2048 }],
        state: 'present',
        detail: 'sizes as recorded',
      },
      {
        name: 'base_20261207_060000',
        backupType: 'incremental',
        files: [],
        state: 'present',
        detail: 'sizes as recorded',
      },
    ],
    readBytes: 4096,
  } as unknown as PitrRestorePlan['chain'],
  target: 'time 2026-12-07 05:33:41+00:00 (inclusive)',
  timelinePath: '1 → 2',
  targetTimeline: 2,
  coverage: 'covered: 000000020000000000000005 was archived after the target',
  window: {
    first: '000000010000000000000002',
    last: '000000020000000000000005',
    lastPushed: '2026-12-07T06:00:00Z',
  },
  divergences: [
    {
      timeline: 1,
      child: 2,
      parentNewest: '0/5000000',
      switchAt: '0/3000000',
    } as PitrRestorePlan['divergences'][number],
  ],
  dataDir: { path: '/srv/pg-restore', exists: true, entries: 0, owner: 'postgres' },
  restoreCommand: 'dbbackup wal fetch …',
  config: ["restore_command = 'dbbackup wal fetch %f %p'", "recovery_target_time = '2026-12-07 05:33:41+00'"],
  tablespaces: [
    { oid: '16385', from: '/srv/ts', to: '/srv/ts2', exists: false, entries: 0 } as NonNullable<
      PitrRestorePlan['tablespaces']
    >[number],
  ],
  refusals: ['a server is running in /srv/pg-restore'],
  warnings: ['the archive has a fork'],
};

export const PG_PLAN_BARE: PitrRestorePlan = {
  ...PG_PLAN,
  base: null,
  chain: null,
  window: null,
  divergences: [],
  tablespaces: undefined,
  timelinePath: null,
  targetTimeline: null,
  refusals: [],
  warnings: [],
};

export const BINLOG_PLAN: BinlogRestorePlan = {
  archive: '/srv/binlog-archive',
  kind: 'physical',
  base: {
    name: 'phys_20261207_050000',
    finishedAt: '2026-12-07T05:01:02Z',
    chain: [
      { name: 'phys_20261207_050000', type: 'full', storedBytes: 5 * 1024 * 1024, sha256: 'ef'.repeat(32) },
      { name: 'phys_20261207_060000', type: 'incremental', storedBytes: 1024, sha256: '01'.repeat(32) },
    ],
    binlog: { file: 'mysql-bin.000003', position: 342, gtid: '0-1-17' },
  },
  target: 'time 2026-12-07 06:30:00 (transactions stamped before it)',
  replayFrom: '0-1-17',
  binlogs: {
    files: ['mysql-bin.000003', 'mysql-bin.000004 (open, stored prefix)'],
    bytes: 9000,
    endsOpen: true,
  },
  coverage: 'covered: mysql-bin.000004 holds events at or after the target',
  dataDir: { path: '/srv/mdb-restore', exists: false, entries: 0, owner: 'mysql' },
  database: null,
  refusals: ['x'],
  warnings: ['y'],
};

export const CLUSTER_PLAN: BinlogRestorePlan = {
  ...BINLOG_PLAN,
  kind: 'cluster',
  base: { ...BINLOG_PLAN.base!, binlog: { file: null, position: null, gtid: '' } },
  binlogs: null,
  dataDir: null,
  members: [
    { database: 'shop', replayFrom: '0-1-5', startFile: 'mysql-bin.000002', binlogs: 2 },
    { database: 'crm', replayFrom: '', startFile: null, binlogs: 0 },
  ],
  database: null,
  refusals: [],
  warnings: [],
};

export const LOGICAL_PLAN: BinlogRestorePlan = {
  ...BINLOG_PLAN,
  kind: 'logical',
  base: null,
  dataDir: null,
  database: 'shop',
  refusals: [],
  warnings: [],
};
