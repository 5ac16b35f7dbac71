import { qualified, ROW_HASH_HEX, type BackupFacts, type SequenceFacts } from '../catalog/facts.js';

/**
 * A restored copy against the facts recorded when its backup was taken (src/catalog/facts.ts):
 * what differs fails the drill, naming the object (the table whose count differs, the row by
 * primary key order whose checksum differs). Pure: no I/O.
 */

export interface Comparison {
  /** Each one fails the drill. */
  differences: string[];
  /** Said, but not a failure (counts taken outside the dump's snapshot, nothing recorded to compare). */
  warnings: string[];
  checked: {
    objects: number;
    tables: number;
    counted: number;
    sequences: number;
    sampledTables: number;
    sampledRows: number;
  };
}

export interface CompareOptions {
  /** drill --sample-rows N: compare the first N recorded row checksums per table (0: none). */
  sampleRows: number;
}

function objectDiff(
  kind: string,
  recorded: readonly string[],
  restored: readonly string[],
  out: string[],
): void {
  const have = new Set(restored);
  const had = new Set(recorded);
  for (const name of recorded)
    if (!have.has(name)) out.push(`${kind} ${name} is missing from the restored copy`);
  for (const name of restored)
    if (!had.has(name)) out.push(`${kind} ${name} is in the restored copy but was not there at backup time`);
}

/** The last value a sequence has handed out (is_called false: the next one is last itself). */
function position(s: SequenceFacts): bigint {
  return s.called ? BigInt(s.last) : BigInt(s.last) - BigInt(s.increment);
}

export function compareFacts(recorded: BackupFacts, restored: BackupFacts, o: CompareOptions): Comparison {
  const differences: string[] = [];
  const warnings: string[] = [];
  const checked: Comparison['checked'] = {
    objects: 0,
    tables: recorded.tables.length,
    counted: 0,
    sequences: 0,
    sampledTables: 0,
    sampledRows: 0,
  };
  const lists: Array<[string, readonly string[], readonly string[]]> = [
    ['schema', recorded.schemas, restored.schemas],
    ['table', recorded.tables.map(qualified), restored.tables.map(qualified)],
    ['view', recorded.views, restored.views],
    ['function', recorded.functions, restored.functions],
    ['extension', recorded.extensions, restored.extensions],
    ['trigger', recorded.triggers ?? [], restored.triggers ?? []],
    ['event', recorded.events ?? [], restored.events ?? []],
  ];
  for (const [kind, a, b] of lists) {
    objectDiff(kind, a, b, differences);
    checked.objects += a.length;
  }
  const restoredTables = new Map(restored.tables.map((t) => [qualified(t), t]));
  const exact = recorded.consistency !== 'own-snapshot';
  for (const t of recorded.tables) {
    const name = qualified(t);
    const copy = restoredTables.get(name);
    if (!copy) continue;
    if (t.rows !== null && copy.rows !== null) {
      checked.counted++;
      if (t.rows !== copy.rows) {
        const line = `table ${name}: ${t.rows} rows at backup time, ${copy.rows} restored`;
        if (exact) differences.push(line);
        else
          warnings.push(
            `${line} (the counts were taken in dbbackup's own snapshot just before the dump's, not in the dump's: rows committed in between differ)`,
          );
      }
    }
    if (o.sampleRows > 0 && t.sample)
      compareSample(name, t.sample, copy.sample, o.sampleRows, differences, checked);
  }
  if (o.sampleRows > 0 && recorded.sampleRows === 0)
    warnings.push(
      'no row checksums were recorded when this backup was taken (backup … --record-rows N): rows were not compared',
    );
  const restoredSequences = new Map(restored.sequences.map((s) => [s.name, s]));
  for (const s of recorded.sequences) {
    const copy = restoredSequences.get(s.name);
    checked.sequences++;
    if (!copy) {
      differences.push(`sequence ${s.name} is missing from the restored copy`);
      continue;
    }
    // Sequences are read outside any snapshot, the dump's a little later: the restored one may be
    // ahead, never behind (behind, it would hand out values the restored rows already hold).
    const ascending = BigInt(s.increment) > 0n;
    const behind = ascending ? position(copy) < position(s) : position(copy) > position(s);
    if (behind)
      differences.push(
        `sequence ${s.name}: at ${position(s)} at backup time, restored at ${position(copy)} (behind: it would hand out values already used)`,
      );
  }
  for (const s of restored.sequences)
    if (!recorded.sequences.some((r) => r.name === s.name))
      differences.push(`sequence ${s.name} is in the restored copy but was not there at backup time`);
  return { differences, warnings, checked };
}

function compareSample(
  name: string,
  recorded: NonNullable<BackupFacts['tables'][number]['sample']>,
  restored: BackupFacts['tables'][number]['sample'],
  limit: number,
  differences: string[],
  checked: Comparison['checked'],
): void {
  const n = Math.min(limit, recorded.rows);
  checked.sampledTables++;
  checked.sampledRows += n;
  const got = restored?.hashes ?? '';
  for (let i = 0; i < n; i++) {
    const want = recorded.hashes.slice(i * ROW_HASH_HEX, (i + 1) * ROW_HASH_HEX);
    const have = got.slice(i * ROW_HASH_HEX, (i + 1) * ROW_HASH_HEX);
    if (want !== have) {
      differences.push(
        have
          ? `table ${name}: row ${i + 1} in primary key order differs from the row recorded at backup time`
          : `table ${name}: row ${i + 1} in primary key order is missing (${restored?.rows ?? 0} restored, ${recorded.rows} recorded)`,
      );
      return;
    }
  }
  // Every recorded row compared: the full digest too (the short hashes could collide).
  if (
    n === recorded.rows &&
    restored &&
    restored.rows === recorded.rows &&
    restored.digest !== recorded.digest
  )
    differences.push(
      `table ${name}: the first ${n} rows in primary key order differ from those recorded at backup time`,
    );
}
