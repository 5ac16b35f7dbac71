import { Command } from 'commander';
import type { DatabaseEngine } from '../../engines/engine.js';
import { openEngine } from '../../engines/index.js';
import { DbBackupError } from '../../errors.js';
import { runPreflight, type CheckResult } from '../../preflight/preflight.js';
import { archivingCheck } from '../../pitr/status.js';
import {
  backupStores,
  compressionChoice,
  connectionOptions,
  explicitEngine,
  globals,
  out,
  table,
} from '../context.js';

const MARK: Record<CheckResult['status'], string> = {
  ok: 'ok',
  warn: 'WARN',
  fail: 'FAIL',
  skipped: 'skipped',
};

export function preflightCommand(): Command {
  return new Command('preflight')
    .description('Check, for real, that a backup would work: server, tools, privileges, destination, space')
    .argument('[database]', 'the database a backup single would dump (omit for a cluster backup)')
    .option('--cloud <uri>', 'check this cloud destination (with --backup-dir as well, both)')
    .option(
      '--pitr',
      'MariaDB: also check what physical backups, binlog archiving and point-in-time restores need',
    )
    .option('--json', 'print the results as JSON')
    .addHelpText(
      'after',
      `
Examples:
  dbbackup preflight shop                                   # before "dbbackup backup single shop"
  dbbackup preflight --cloud s3://my-bucket/backups/        # before a cluster backup to S3
Exit status: 0 when every check passes (warnings allowed), 1 when any fails.`,
    )
    .action(
      async (
        database: string | undefined,
        opts: { cloud?: string; json?: boolean; pitr?: boolean },
        cmd: Command,
      ) => {
        const g = globals(cmd);
        const engine = await openEngine(connectionOptions(g, explicitEngine(g) ?? 'postgres'));
        try {
          if (database !== undefined) engine.checkDatabaseName(database);
          const { algorithm, level } = compressionChoice(g);
          const results = await runPreflight({
            engine,
            database,
            stores: await backupStores(g, opts.cloud),
            compression: algorithm,
            level,
          });
          const archiving = await archivingCheck(engine as Parameters<typeof archivingCheck>[0]);
          if (archiving) results.push({ check: 'wal archiving', ...archiving });
          if (opts.pitr) results.push(...(await pitrPreflight(engine)));
          const failed = results.filter((r) => r.status === 'fail');
          if (opts.json) out.json({ ok: failed.length === 0, checks: results });
          else {
            for (const line of table(
              ['CHECK', 'RESULT', 'DETAIL'],
              results.map((r) => [r.check, MARK[r.status], r.detail]),
            )) {
              out.line(line);
            }
            for (const r of results)
              if (r.hint && r.status !== 'ok') out.line(`hint (${r.check}): ${r.hint}`);
          }
          if (failed.length) {
            throw new DbBackupError(`Preflight failed: ${failed.map((r) => r.check).join(', ')}`, {
              hint: 'Fix what the table above marks FAIL, then run preflight again.',
            });
          }
        } finally {
          await engine.close();
        }
      },
    );
}

/** MariaDB's PITR checks; PostgreSQL's archiving health is `pitr status`. */
async function pitrPreflight(engine: DatabaseEngine): Promise<CheckResult[]> {
  const { MysqlEngine } = await import('../../engines/mysql.js');
  if (!(engine instanceof MysqlEngine))
    return [
      { check: 'pitr', status: 'skipped', detail: 'PostgreSQL: "dbbackup pitr status" checks archiving' },
    ];
  const { pitrChecks } = await import('../../preflight/pitr.js');
  return pitrChecks(engine);
}
