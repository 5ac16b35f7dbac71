import { Command } from 'commander';
import { defaultAuditFile, readHistory } from '../../ops/audit.js';
import type { OperationRecord } from '../../ops/record.js';
import { formatBytes, formatDuration } from '../../units.js';
import { globals, out, table } from '../context.js';
import { parseInteger } from '../numbers.js';

function localTime(iso: string): string {
  const d = new Date(iso);
  const pad = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function row(r: OperationRecord): string[] {
  const outcome = r.dryRun ? `${r.outcome} (dry run)` : r.outcome;
  return [
    localTime(r.time),
    r.command,
    r.database ?? '',
    outcome,
    formatDuration(r.durationSeconds),
    r.bytes === undefined ? '' : formatBytes(r.bytes),
    r.user,
    r.outcome === 'success' ? (r.backup ?? r.destination ?? '') : (r.error ?? ''),
  ];
}

export function historyCommand(): Command {
  return new Command('history')
    .description('Past operations from the audit log, newest first (backups, restores, verifies, cleanups…)')
    .option('--limit <n>', 'at most n operations (default 20; 0 for all)', '20')
    .option('--failed', 'only failed or interrupted operations')
    .option('--json', 'print the records as JSON (the audit log schema)')
    .addHelpText(
      'after',
      `
The audit log is --audit-log FILE, else log.audit_file in the configuration, else
$XDG_STATE_HOME/dbbackup/audit.jsonl (~/.local/state/dbbackup/audit.jsonl).

Examples:
  dbbackup history
  dbbackup history --failed --limit 5
  dbbackup --profile prod history --json | jq '.[0]'`,
    )
    .action(async (opts: { limit: string; failed?: boolean; json?: boolean }, cmd: Command) => {
      const limit = parseInteger('--limit', opts.limit, { min: 0, max: 1_000_000 });
      const file = (globals(cmd) as { auditLog?: string }).auditLog ?? defaultAuditFile();
      const { records, skipped } = await readHistory(file, {
        limit: limit === 0 ? undefined : limit,
        failed: Boolean(opts.failed),
      });
      if (skipped)
        out.note(
          `warning: ${skipped} line${skipped === 1 ? '' : 's'} of ${file} are not audit records; skipped`,
        );
      if (opts.json) {
        out.json(records);
        return;
      }
      if (!records.length) {
        out.line(`No ${opts.failed ? 'failed ' : ''}operations recorded in ${file}`);
        return;
      }
      for (const line of table(
        ['TIME', 'OPERATION', 'DATABASE', 'RESULT', 'DURATION', 'SIZE', 'USER', 'DETAIL'],
        records.map(row),
      ))
        out.line(line);
    });
}
