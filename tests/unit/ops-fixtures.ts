import type { OperationRecord } from '../../src/ops/record.js';

/** An operation record with plausible values; `over` changes some. */
export function record(over: Partial<OperationRecord> = {}): OperationRecord {
  return {
    v: 1,
    id: 'id-1',
    time: '2026-01-02T03:04:05.000Z',
    started: '2026-01-02T03:04:00.000Z',
    durationSeconds: 5,
    command: 'backup single',
    kind: 'backup_single',
    outcome: 'success',
    exitCode: 0,
    dryRun: false,
    user: 'backup',
    host: 'backup1',
    pid: 1,
    version: '0.1.0',
    server: 'db1:5432',
    database: 'shop',
    destination: '/srv/backups',
    backup: 'shop_20260102_030400.dump.zst',
    bytes: 1234,
    ...over,
  };
}
