import type { MetricSample } from '../ops/metrics.js';
import type { PitrStatus } from './status.js';

/**
 * The archive's health as Prometheus gauges, written by `pitr status --metrics-file` (run it from
 * cron or a timer beside the archiving): an alert on the lag catches a broken archive_command,
 * which never stops PostgreSQL but fills pg_wal, long before a restore needs the missing WAL.
 */
export function pitrStatusMetrics(status: PitrStatus, now: Date): MetricSample[] {
  const labels = { server: status.server.endpoint, archive: status.archive.location ?? '-' };
  const samples: MetricSample[] = [
    {
      name: 'dbbackup_pitr_archive_healthy',
      help: 'PITR archiving as pitr status judged it: 1 no problem found, 0 it needs attention.',
      labels,
      value: status.problems.length ? 0 : 1,
    },
  ];
  const newest = status.archive.newest;
  if (newest) {
    samples.push(
      {
        name: 'dbbackup_pitr_last_archived_timestamp_seconds',
        help: 'Unix time the newest WAL segment in the archive was stored.',
        labels,
        value: Date.parse(newest.pushedAt) / 1000,
      },
      {
        name: 'dbbackup_pitr_archive_lag_seconds',
        help: 'Age of the newest WAL segment in the archive when pitr status ran (writes since then are not yet recoverable).',
        labels,
        value: Math.max(0, Math.round((now.getTime() - Date.parse(newest.pushedAt)) / 1000)),
      },
    );
  }
  if (status.backlog)
    samples.push({
      name: 'dbbackup_pitr_ready_segments',
      help: 'WAL segments the server has finished and not yet archived (.ready files in pg_wal).',
      labels,
      value: status.backlog.count,
    });
  if (status.archiver)
    samples.push({
      name: 'dbbackup_pitr_failed_pushes_total',
      help: "The server's count of failed archive_command runs (pg_stat_archiver.failed_count).",
      type: 'counter',
      labels,
      value: status.archiver.failedCount,
    });
  return samples;
}
