import type { Command } from 'commander';
import { DEFAULT_COUNT_LIMIT_MIB, type FactOptions } from '../catalog/facts.js';
import { UsageError } from '../errors.js';
import { parseOptionalInteger } from './numbers.js';

/** The options of `backup single|cluster` for what restore drills compare (issue 17). */
export interface FactFlags {
  recordFacts?: boolean;
  countLimit?: string;
  recordRows?: string;
}

export function withFactOptions(cmd: Command): Command {
  return cmd
    .option(
      '--no-record-facts',
      'record nothing for restore drills to compare (objects, exact row counts in the dump snapshot)',
    )
    .option(
      '--count-limit <MiB>',
      `count rows exactly in tables up to this size for drills (default ${DEFAULT_COUNT_LIMIT_MIB}; 0: every table)`,
    )
    .option(
      '--record-rows <n>',
      'also record checksums of the first n rows of each table by primary key, for drill --sample-rows (default 0: none)',
    );
}

export function factOptions(f: FactFlags): FactOptions | undefined {
  const limit = parseOptionalInteger('--count-limit', f.countLimit, { min: 0, max: 1_000_000_000 });
  const rows = parseOptionalInteger('--record-rows', f.recordRows, { min: 0, max: 1_000_000 });
  if (f.recordFacts === false) {
    if (limit !== undefined || rows)
      throw new UsageError(
        '--no-record-facts records nothing: --count-limit and --record-rows do not apply',
        'Drop one of them.',
      );
    return undefined;
  }
  const mib = limit ?? DEFAULT_COUNT_LIMIT_MIB;
  return { countLimitBytes: mib === 0 ? null : mib * 1024 * 1024, sampleRows: rows ?? 0 };
}
