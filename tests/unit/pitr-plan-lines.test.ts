import { describe, expect, it } from 'vitest';
import { binlogPlanLines, pitrPlanLines } from '../../src/pitr/plan-lines.js';
import { BINLOG_PLAN, CLUSTER_PLAN, LOGICAL_PLAN, PG_PLAN, PG_PLAN_BARE } from './pitr-plan-fixtures.js';

/**
 * The plan of restore pitr in words: the lines the command printed before the formatter was shared
 * with the terminal UI (captured from the command's own printPlan functions), byte for byte.
 */
describe('restore pitr plan lines', () => {
  it('PostgreSQL: base, chain, timelines, WAL window, fork, tablespaces, config, warnings, refusals', () => {
    expect(pitrPlanLines(PG_PLAN)).toEqual([
      'Archive:   /srv/wal-archive',
      'Base:      base_20261207_050000 (ended 2026-12-07T05:01:02Z; timeline 1, WAL 0/2000028 … 0/2000100; 3.0 MiB stored, 40.0 MiB of data)',
      'Chain:     2 backups, full first; 4.0 KiB to read from the archive',
      '  1. base_20261207_050000 (full, ended 2026-12-07T05:01:02Z; 2.0 KiB; sha256 cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd): present, sizes as recorded',
      '  2. base_20261207_060000 (incremental; 0 B; no objects): present, sizes as recorded',
      'Checksum:  verified while it streams in',
      'Target:    time 2026-12-07 05:33:41+00:00 (inclusive)',
      'Timelines: 1 → 2 (recovery_target_timeline 2)',
      'WAL:       000000010000000000000002 … 000000020000000000000005, newest archived 2026-12-07T06:00:00Z',
      'Coverage:  covered: 000000020000000000000005 was archived after the target',
      'Fork:      timeline 1 has WAL up to 0/5000000 after timeline 2 branched from it at 0/3000000',
      'Data dir:  /srv/pg-restore (exists, 0 entries; owner postgres, mode 0700)',
      'Tablespace: 16385 (was /srv/ts) → /srv/ts2 (mapped) (will be created)',
      'Config:    appended to postgresql.auto.conf, with recovery.signal:',
      "             restore_command = 'dbbackup wal fetch %f %p'",
      "             recovery_target_time = '2026-12-07 05:33:41+00'",
      'Warning:   the archive has a fork',
      'REFUSED:   a server is running in /srv/pg-restore',
    ]);
    expect(pitrPlanLines(PG_PLAN_BARE)).toEqual([
      'Archive:   /srv/wal-archive',
      'Base:      none',
      'Target:    time 2026-12-07 05:33:41+00:00 (inclusive)',
      'Timelines: ? (recovery_target_timeline ?)',
      'Coverage:  covered: 000000020000000000000005 was archived after the target',
      'Data dir:  /srv/pg-restore (exists, 0 entries; owner postgres, mode 0700)',
      'Config:    appended to postgresql.auto.conf, with recovery.signal:',
      "             restore_command = 'dbbackup wal fetch %f %p'",
      "             recovery_target_time = '2026-12-07 05:33:41+00'",
    ]);
  });
  it('MariaDB: physical chain, cluster members with their dumps, a single logical database', () => {
    expect(binlogPlanLines(BINLOG_PLAN)).toEqual([
      'Archive:   /srv/binlog-archive (MariaDB binlog archive)',
      'Base:      phys_20261207_050000 (physical, finished 2026-12-07T05:01:02Z; binlog mysql-bin.000003:342, GTID 0-1-17)',
      '  chain:   phys_20261207_050000 (full, 5.0 MiB, sha256 efefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefef: verified while it streams in)',
      '  chain:   phys_20261207_060000 (incremental, 1.0 KiB, sha256 0101010101010101010101010101010101010101010101010101010101010101: verified while it streams in)',
      'Target:    time 2026-12-07 06:30:00 (transactions stamped before it)',
      'Replay:    transactions after 0-1-17',
      'Binlogs:   2 (mysql-bin.000003 … mysql-bin.000004 (open, stored prefix), 8.8 KiB), each checked before the first is applied',
      'Coverage:  covered: mysql-bin.000004 holds events at or after the target',
      'Data dir:  /srv/mdb-restore (will be created; owner mysql, mode 0750; configuration in restored.cnf)',
      'Warning:   y',
      'REFUSED:   x',
    ]);
    expect(binlogPlanLines(CLUSTER_PLAN, ['a on b: c'])).toEqual([
      'Archive:   /srv/binlog-archive (MariaDB binlog archive)',
      'Base:      phys_20261207_050000 (cluster, finished 2026-12-07T05:01:02Z; binlog ?:?, GTID -)',
      '  chain:   phys_20261207_050000 (full, 5.0 MiB, sha256 efefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefef: verified before the restore)',
      '  chain:   phys_20261207_060000 (incremental, 1.0 KiB, sha256 0101010101010101010101010101010101010101010101010101010101010101: verified before the restore)',
      'Target:    time 2026-12-07 06:30:00 (transactions stamped before it)',
      'Replay:    transactions after 0-1-17',
      'Binlogs:   none needed',
      'Coverage:  covered: mysql-bin.000004 holds events at or after the target',
      'Into:      a on b: c',
      'Replay of: shop: transactions after 0-1-5, from mysql-bin.000002 (2 binlog(s), mariadb-binlog --database)',
      'Replay of: crm: transactions after (nothing), from ? (0 binlog(s), mariadb-binlog --database)',
    ]);
    expect(binlogPlanLines(LOGICAL_PLAN, ['shop on h: create'])).toEqual([
      'Archive:   /srv/binlog-archive (MariaDB binlog archive)',
      'Base:      none',
      'Target:    time 2026-12-07 06:30:00 (transactions stamped before it)',
      'Replay:    transactions after 0-1-17',
      'Binlogs:   2 (mysql-bin.000003 … mysql-bin.000004 (open, stored prefix), 8.8 KiB), each checked before the first is applied',
      'Coverage:  covered: mysql-bin.000004 holds events at or after the target',
      'Into:      shop on h: create',
      'Replay of: database shop only (mariadb-binlog --database)',
    ]);
  });
});
