import { Command } from 'commander';
// The spec's checks are light; the sampler and the engines load when the command runs.
import {
  describeSpec,
  SAMPLE_STRATEGIES,
  validateSampleSpec,
  type SampleSpec,
  type SampleStrategy,
} from '../../backup/sample/spec.js';
import { engineFamily } from '../../engines/family.js';
import { UsageError } from '../../errors.js';
import { formatBytes, formatDuration } from '../../pipeline/progress.js';
import {
  backupStores,
  compressionChoice,
  connectionOptions,
  explicitEngine,
  globals,
  out,
  table,
} from '../context.js';
import { decimalValue } from '../numbers.js';
import { interruptSignal } from '../signals.js';
import { reportResult } from '../../ops/operation.js';

export interface SampleOptions {
  sampleStrategy?: string;
  sampleValue?: string;
  sampleRatio?: string;
  samplePercent?: string;
  sampleCount?: string;
  keepReferences?: boolean;
  cloud?: string;
  json?: boolean;
}

const SHORTCUTS: Array<{ strategy: SampleStrategy; flag: string; key: keyof SampleOptions }> = [
  { strategy: 'ratio', flag: '--sample-ratio', key: 'sampleRatio' },
  { strategy: 'percent', flag: '--sample-percent', key: 'samplePercent' },
  { strategy: 'count', flag: '--sample-count', key: 'sampleCount' },
];

const USAGE_HINT =
  'Use --sample-ratio N, --sample-percent N or --sample-count N, or --sample-strategy ratio|percent|count with --sample-value N.';

/**
 * The sample from the flags: one shortcut (--sample-ratio/--sample-percent/--sample-count), or
 * --sample-strategy with --sample-value; nothing at all means every 10th row, as in the reference tool.
 */
export function sampleSpecFromOptions(opts: SampleOptions): SampleSpec {
  const given = SHORTCUTS.filter((s) => opts[s.key] !== undefined);
  if (given.length > 1) {
    throw new UsageError(
      `${given.map((s) => s.flag).join(' and ')} cannot be used together`,
      'Give only one of --sample-ratio, --sample-percent and --sample-count.',
    );
  }
  const shortcut = given[0];
  if (shortcut && (opts.sampleStrategy !== undefined || opts.sampleValue !== undefined)) {
    throw new UsageError(
      `${shortcut.flag} cannot be combined with --sample-strategy or --sample-value`,
      `${shortcut.flag} N is short for --sample-strategy ${shortcut.strategy} --sample-value N; use one form.`,
    );
  }
  if (
    opts.sampleStrategy !== undefined &&
    !SAMPLE_STRATEGIES.includes(opts.sampleStrategy as SampleStrategy)
  ) {
    throw new UsageError(`Unknown sample strategy "${opts.sampleStrategy}"`, 'Use ratio, percent or count.');
  }
  const strategy = shortcut?.strategy ?? opts.sampleStrategy ?? 'ratio';
  const flag = shortcut?.flag ?? '--sample-value';
  let text = shortcut ? String(opts[shortcut.key]) : opts.sampleValue;
  if (text === undefined) {
    if (opts.sampleStrategy !== undefined) {
      throw new UsageError(`--sample-strategy ${opts.sampleStrategy} needs --sample-value N`, USAGE_HINT);
    }
    text = '10';
  }
  const value = decimalValue(text);
  if (value === undefined)
    throw new UsageError(
      `Invalid ${flag} ${text === '' ? 'an empty value' : `"${text}"`}: not a number written in decimal digits`,
      USAGE_HINT,
    );
  return {
    strategy: validateSampleSpec(strategy, value, flag),
    value,
    keepReferences: opts.keepReferences !== false,
  };
}

/** Registers `backup sample` on the `backup` command. */
export function addSampleCommand(backup: Command): void {
  backup
    .command('sample')
    .description(
      'Back up a smaller copy of one database that restores like a full one: the whole schema, sampled rows',
    )
    .argument('<database>', 'database to sample')
    .option(
      '--sample-strategy <strategy>',
      'ratio (every Nth row), percent (about N% of the rows) or count (at most N rows per table); default ratio',
    )
    .option('--sample-value <n>', 'N for --sample-strategy (default 10)')
    .option('--sample-ratio <n>', 'keep every Nth row of each table (N ≥ 2)')
    .option(
      '--sample-percent <n>',
      'keep about N% of the rows of each table, picked at random but repeatably (0 < N ≤ 100)',
    )
    .option('--sample-count <n>', 'keep at most N rows of each table (the first N by primary key)')
    .option(
      '--keep-references',
      'also keep every row that kept rows reference through foreign keys, transitively (default)',
    )
    .option(
      '--no-keep-references',
      'do not add referenced rows: sampled rows whose referenced rows are not in the sample are left out instead',
    )
    .option(
      '--cloud <uri>',
      'store the sample in the cloud (s3://, minio://, b2://, azure://, gs://); with --backup-dir as well, in both',
    )
    .option('--json', 'print the result as JSON')
    // Usage errors become exit code 2 like every other usage error (commander would exit 1 itself).
    .exitOverride()
    .showHelpAfterError('(add --help for usage)')
    .addHelpText(
      'after',
      `
The sample is a plain SQL script: the schema from pg_dump/mysqldump, the sampled rows read in one
consistent snapshot, then (PostgreSQL) indexes, constraints and triggers, or (MySQL/MariaDB) triggers.
With --keep-references every foreign key holds, so it restores with constraints enabled:
  dbbackup restore single <file> --target shop_dev --create --confirm

Examples:
  dbbackup backup sample shop --sample-ratio 10        # every 10th row, plus the rows they reference
  dbbackup backup sample shop --sample-percent 5
  dbbackup backup sample shop --sample-count 1000      # first 1000 rows of each table by primary key
  dbbackup backup sample shop --sample-strategy count --sample-value 50 --no-keep-references
  dbbackup --db-type mariadb --host 127.0.0.1 backup sample shop --sample-ratio 100`,
    )
    .action(async (database: string, opts: SampleOptions, cmd: Command) => {
      const g = globals(cmd);
      // Flags are checked before anything connects.
      const spec = sampleSpecFromOptions(opts);
      const engineName = explicitEngine(g) ?? 'postgres';
      const { algorithm, level } = compressionChoice(g);
      const [{ openEngine }, { backupSample }] = await Promise.all([
        import('../../engines/index.js'),
        import('../../backup/sample/index.js'),
      ]);
      const engine = await openEngine(connectionOptions(g, engineName));
      const stores = await backupStores(g, opts.cloud);
      try {
        const result = await backupSample({
          engine,
          database,
          storages: stores,
          spec,
          compression: algorithm,
          level,
          onWarning: (line) => out.note(`warning: ${line}`),
          onProgress: (line) => (opts.json ? undefined : out.note(line)),
          signal: interruptSignal(),
        });
        const m = result.metadata;
        reportResult({ backup: result.key, bytes: m.sizeBytes, destination: result.locations.join(' and ') });
        if (opts.json) {
          out.json({ paths: result.locations, metadata: m });
          return;
        }
        out.line(
          `Sample backup complete: ${result.locations.join(' and ')} (${formatBytes(m.sizeBytes)}, sha256 ${m.sha256}, ${formatDuration(m.durationSeconds)})`,
        );
        out.line(`Sample: ${describeSpec(spec)}`);
        const family = engineFamily(m.engine);
        const exact = new Map(m.tables.map((t) => [`${t.schema}.${t.name}`, t.rowsExact]));
        const rows = (m.sample?.tables ?? []).map((t) => [
          family.tableName(t),
          `${exact.get(`${t.schema}.${t.name}`) === false ? '~' : ''}${t.rows}`,
          String(t.keptRows),
          String(t.sampledRows),
          String(t.referencedRows),
          String(t.droppedRows),
        ]);
        for (const line of table(['TABLE', 'ROWS', 'KEPT', 'SAMPLED', 'REFERENCED', 'DROPPED'], rows)) {
          out.line(`  ${line}`);
        }
        const kept = (m.sample?.tables ?? []).reduce((s, t) => s + t.keptRows, 0);
        const total = (m.sample?.tables ?? []).reduce((s, t) => s + t.rows, 0);
        out.line(`Kept ${kept} of ${total} rows in ${rows.length} tables.`);
      } finally {
        await engine.close();
      }
    });
}
