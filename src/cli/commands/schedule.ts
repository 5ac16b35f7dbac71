import { Command, Option } from 'commander';
import { UsageError } from '../../errors.js';
import { defaultAuditFile, lastRecord } from '../../ops/audit.js';
import { nextRuns, parseCron } from '../../schedule/cron.js';
import {
  applyPlan,
  applyRemove,
  defaultMethod,
  listJobs,
  planAdd,
  planRemove,
  unitDir,
  type Job,
  type Method,
  type Rendered,
} from '../../schedule/schedule.js';
import { out, table } from '../context.js';

interface AddOptions {
  cron: string;
  method?: Method;
  runAs?: string;
  dryRun?: boolean;
}

function show(plan: Rendered & { delete?: string[] }): void {
  for (const f of plan.files) {
    out.line(`--- ${f.path}`);
    out.line(f.content.trimEnd());
  }
  for (const f of plan.delete ?? []) out.line(`--- delete ${f}`);
  if (plan.crontab !== undefined) {
    out.line('--- crontab');
    out.line(plan.crontab.trimEnd());
  }
  for (const c of plan.commands) out.line(`--- run: ${c.join(' ')}`);
}

/** The user a job runs as: --run-as, else the one sudo was run by (root's units are then not root's jobs). */
function runAs(o: AddOptions, method: Method): string | undefined {
  const root = process.getuid?.() === 0;
  const user = o.runAs ?? (root ? process.env.SUDO_USER : undefined);
  if (user && !root)
    throw new UsageError(
      '--run-as needs root',
      'Without it, the job runs as you (a user timer or your crontab).',
    );
  if (user && method === 'systemd' && unitDir().user)
    throw new UsageError(
      '--run-as applies to system units',
      'Unset DBBACKUP_SYSTEMD_UNIT_DIR or run as root.',
    );
  return user;
}

export function scheduleCommand(): Command {
  const schedule = new Command('schedule').description(
    "Run dbbackup commands on a schedule, in the system's own scheduler (systemd timers or cron)",
  );
  schedule
    .command('add')
    .description(
      'Install a job: a systemd service + timer where systemd runs the machine, else a crontab entry',
    )
    .argument('<name>', 'the job name (letters, digits, - and _): dbbackup-<name>.timer/.service')
    .argument('<dbbackup-arguments...>', 'after --: the dbbackup command and its options')
    .requiredOption(
      '--cron <expression>',
      'when: five cron fields ("0 5 * * *" = 05:00 daily) or @daily, @hourly…',
    )
    .addOption(
      new Option('--method <method>', 'systemd or cron (default: systemd if it runs this machine)').choices([
        'systemd',
        'cron',
      ]),
    )
    .option('--run-as <user>', 'root only: the user the job runs as (default: $SUDO_USER, else root)')
    .option('--dry-run', 'print the unit files or crontab lines, change nothing')
    .addHelpText(
      'after',
      `
Examples:
  dbbackup schedule add nightly-drill --cron "0 5 * * *" -- drill latest
  dbbackup schedule add prod-cluster --cron "0 2 * * *" --dry-run -- --profile prod backup cluster
  dbbackup schedule add hourly-wal-check --cron @hourly --method cron -- wal verify --archive /srv/wal`,
    )
    .action(async (name: string, args: string[], o: AddOptions) => {
      const method = o.method ?? defaultMethod();
      const job: Job = { name, cron: o.cron, args, method, user: runAs(o, method) };
      const plan = await planAdd(job);
      if (o.dryRun) {
        show(plan);
        out.line('Dry run: nothing was changed.');
        return;
      }
      const notes = await applyPlan(plan, job);
      for (const n of notes) out.note(n);
      const [next] = nextRuns(parseCron(job.cron), 1);
      out.line(
        `Schedule "${name}" installed (${method === 'systemd' ? plan.files.map((f) => f.path).join(', ') : 'crontab'}); next run ${next ? next.toString() : '?'}`,
      );
    });
  schedule
    .command('list')
    .description('The jobs installed with schedule add: when they run next, and how their last run went')
    .option('--json', 'print as JSON')
    .action(async (o: { json?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<{ auditLog?: string }>();
      const jobs = await listJobs();
      const rows = await Promise.all(
        jobs.map(async (j) => {
          const at = j.args.indexOf('--audit-log');
          const audit = (at >= 0 ? j.args[at + 1] : undefined) ?? g.auditLog ?? defaultAuditFile();
          const last = await lastRecord(audit, (r) => r.details?.schedule === j.name).catch(() => undefined);
          return { ...j, next: nextRuns(parseCron(j.cron), 1)[0]?.toISOString() ?? null, last: last ?? null };
        }),
      );
      if (o.json) {
        out.json(rows);
        return;
      }
      if (!rows.length) {
        out.line('No schedules installed.');
        return;
      }
      const lines = table(
        ['NAME', 'METHOD', 'CRON', 'NEXT RUN', 'LAST RESULT', 'COMMAND'],
        rows.map((r) => [
          r.name,
          r.method,
          r.cron,
          r.next ? new Date(r.next).toString().replace(/ \(.*\)$/, '') : '?',
          r.last
            ? `${r.last.outcome} ${r.last.time.replace('T', ' ').slice(0, 16)}${r.last.error ? `: ${r.last.error}` : ''}`
            : 'never run',
          `dbbackup ${r.args.join(' ')}`,
        ]),
      );
      for (const l of lines) out.line(l);
    });
  schedule
    .command('remove')
    .description('Uninstall a job (its units, or its crontab entry)')
    .argument('<name>', 'the job name')
    .option('--dry-run', 'print what would be removed, change nothing')
    .action(async (name: string, o: { dryRun?: boolean }) => {
      const { job, plan } = await planRemove(name);
      if (o.dryRun) {
        show(plan);
        out.line('Dry run: nothing was changed.');
        return;
      }
      for (const n of await applyRemove(plan, job)) out.note(n);
      out.line(`Schedule "${name}" removed.`);
    });
  return schedule;
}
