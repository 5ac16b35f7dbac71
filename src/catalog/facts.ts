import { createHash } from 'node:crypto';
import type { z } from 'zod';
import { lazySchemas } from '../zod.js';

/**
 * What a restore drill compares a restored copy with (issue 17), recorded when the backup is taken
 * and kept in its metadata (`facts`, or a cluster member's `facts`): the database's objects, exact
 * row counts per table and, when asked for, checksums of the first rows of each table by primary
 * key. How they relate to the dump's data is `consistency`:
 *
 * - `dump-snapshot` (PostgreSQL): read in the very snapshot the dump used (exported, then handed to
 *   `pg_dump --snapshot`), so the dump holds exactly these rows;
 * - `aligned` (MySQL/MariaDB): read in dbbackup's own consistent snapshot, taken while the database's
 *   tables were read-locked until the dump had taken its own: both saw the same committed rows;
 * - `own-snapshot` (MySQL/MariaDB, when the tables could not be locked in time): dbbackup's own
 *   snapshot, taken just before the dump's; rows committed in between make counts differ.
 */

export const FACTS_VERSION = 1;

/** Bytes of a row's hash kept per sampled row (hex digits): enough to say which row differs. */
export const ROW_HASH_HEX = 8;

const schemas = lazySchemas((z) => {
  const sample = z.object({
    /** Rows hashed: the first `rows` by primary key order (fewer when the table has fewer). */
    rows: z.number().int().nonnegative(),
    /** SHA-256 over the rows' full hashes, in order. */
    digest: z.string().regex(/^[0-9a-f]{64}$/),
    /** The first ROW_HASH_HEX hex digits of each row's hash, concatenated, in order. */
    hashes: z.string().regex(/^[0-9a-f]*$/),
  });
  const table = z.object({
    schema: z.string(),
    name: z.string(),
    /** Exact count in the snapshot; null when not counted (larger than the count limit, partitioned). */
    rows: z.number().int().nonnegative().nullable(),
    bytes: z.number().nonnegative(),
    /** Why rows is null, in words. */
    uncounted: z.string().optional(),
    sample: sample.optional(),
    /** Why there is no sample although samples were asked for (no primary key…). */
    unsampled: z.string().optional(),
  });
  const sequence = z.object({
    name: z.string(),
    /** PostgreSQL last_value, is_called and increment, as decimal text (bigint). */
    last: z.string(),
    called: z.boolean(),
    increment: z.string(),
  });
  const facts = z.object({
    v: z.literal(FACTS_VERSION),
    consistency: z.enum(['dump-snapshot', 'aligned', 'own-snapshot']),
    takenAt: z.iso.datetime({ offset: true }),
    /** Tables larger than this many bytes were not counted (null: every table was). */
    countLimitBytes: z.number().int().nonnegative().nullable(),
    /** Rows hashed per table (0: none). */
    sampleRows: z.number().int().nonnegative(),
    schemas: z.array(z.string()),
    tables: z.array(table),
    views: z.array(z.string()),
    functions: z.array(z.string()),
    extensions: z.array(z.string()),
    sequences: z.array(sequence),
    /** MySQL/MariaDB: triggers and events (PostgreSQL triggers come back with their tables). */
    triggers: z.array(z.string()).optional(),
    events: z.array(z.string()).optional(),
  });
  return { facts, table, sequence, sample };
});

type Schemas = ReturnType<typeof schemas>;
export type BackupFacts = z.infer<Schemas['facts']>;
export type TableFacts = z.infer<Schemas['table']>;
export type SequenceFacts = z.infer<Schemas['sequence']>;
export type RowSample = z.infer<Schemas['sample']>;

/** The schema, for the metadata and manifest schemas that hold facts. */
export function factsSchema(): Schemas['facts'] {
  return schemas().facts;
}

/** What to record: the defaults of `backup single|cluster`, changed by --no-record-facts, --count-limit, --record-rows. */
export interface FactOptions {
  /** Count tables up to this many bytes exactly (null: every table). */
  countLimitBytes: number | null;
  /** Hash the first N rows of each table by primary key (0: none). */
  sampleRows: number;
}

/** Default --count-limit: tables up to 1 GiB are counted (a COUNT(*) of that reads as much again as the dump). */
export const DEFAULT_COUNT_LIMIT_MIB = 1024;

/** `schema.name` as shown to users and compared (MySQL/MariaDB tables have no schema: their name). */
export function qualified(t: { schema: string; name: string }): string {
  return t.schema ? `${t.schema}.${t.name}` : t.name;
}

/** How the facts are read: what is recorded, and (a drill reading its copy) which tables to count. */
export interface FactReadOptions extends FactOptions {
  /** Count only these tables (by qualified name); every table within the limit when absent. */
  count?: (table: string) => boolean;
}

/**
 * The facts' part of the dump (engines implement it): the dump's extra arguments, the facts read
 * while it runs, and the end of the sessions that hold its snapshot.
 */
export interface FactSnapshot {
  /** Arguments that make the dump read the facts' snapshot (`pg_dump --snapshot=…`); may be empty. */
  dumpArgs: string[];
  /** The facts, read while the dump runs; rejects when they could not be read. */
  facts: Promise<BackupFacts>;
  /** Told that the dump ended successfully (before `facts` is awaited). */
  dumpEnded?(): void;
  /** Ends the sessions (and any lock): once the dump has finished or failed. Never throws. */
  close(): Promise<void>;
}

/** A table's sampled rows: each row's full hash, in primary key order, as recorded. */
export function rowSample(fullHashes: readonly string[]): RowSample {
  return {
    rows: fullHashes.length,
    digest: createHash('sha256').update(fullHashes.join('\n')).digest('hex'),
    hashes: fullHashes.map((h) => h.slice(0, ROW_HASH_HEX)).join(''),
  };
}
