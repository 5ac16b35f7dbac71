import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMyDatabase, dropMyDatabase, myExec, myQuery } from '../harness/mysql.js';
import { createPgDatabase, dropPgDatabase, pgExec, pgQuery } from '../harness/pg.js';
import {
  cli,
  expectExit,
  listDir,
  myArgs,
  onlyBackup,
  pgArgs,
  removeDir,
  sha256File,
  tempDir,
  uniqueName,
} from './util.js';

/**
 * A customer → order → order line → line note chain (the last one through a two-column key), a
 * self-referencing customer table, a table without any key, a stored generated column, a trigger
 * that changes rows on insert (it must not fire while the sample loads) and a materialized view.
 */
const PG_FIXTURE = String.raw`
CREATE SCHEMA shop;
CREATE TABLE shop.customers (
  id serial PRIMARY KEY,
  name text NOT NULL,
  referrer_id int REFERENCES shop.customers (id)
);
CREATE TABLE shop.orders (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  customer_id int NOT NULL REFERENCES shop.customers (id),
  note text,
  total numeric(10, 2) NOT NULL,
  note_upper text GENERATED ALWAYS AS (upper(note)) STORED
);
CREATE INDEX orders_customer_idx ON shop.orders (customer_id);
CREATE TABLE shop.order_lines (
  order_id bigint NOT NULL REFERENCES shop.orders (id) ON DELETE CASCADE,
  line int NOT NULL,
  qty int NOT NULL CHECK (qty > 0),
  PRIMARY KEY (order_id, line)
);
CREATE TABLE shop.line_notes (
  id serial PRIMARY KEY,
  order_id bigint NOT NULL,
  line int NOT NULL,
  body text,
  CONSTRAINT line_notes_line_fkey FOREIGN KEY (order_id, line) REFERENCES shop.order_lines (order_id, line)
);
CREATE TABLE public.events (at timestamptz NOT NULL, payload jsonb);
CREATE FUNCTION shop.stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.note := NEW.note || ' (stamped)'; RETURN NEW; END $$;
CREATE TRIGGER orders_stamp BEFORE INSERT ON shop.orders FOR EACH ROW EXECUTE FUNCTION shop.stamp();

INSERT INTO shop.customers (name, referrer_id)
  SELECT 'customer ' || g, CASE WHEN g % 10 = 1 THEN NULL ELSE g - 1 END FROM generate_series(1, 300) g;
INSERT INTO shop.orders (customer_id, note, total)
  SELECT 1 + (g * 7) % 300, E'order\t' || g || E' it''s "quoted" \\ Ünï 😀\nline 2', (g % 1000) / 10.0
    FROM generate_series(1, 3000) g;
INSERT INTO shop.order_lines SELECT o.id, l, 1 + (o.id + l) % 5 FROM shop.orders o, generate_series(1, 2) l;
INSERT INTO shop.line_notes (order_id, line, body)
  SELECT 1 + (g * 13) % 3000, 1 + g % 2, 'note ' || g FROM generate_series(1, 1000) g;
INSERT INTO public.events
  SELECT timestamptz '2024-01-01 00:00:00+00' + g * interval '1 hour', jsonb_build_object('n', g)
    FROM generate_series(1, 500) g;
CREATE MATERIALIZED VIEW shop.order_counts AS SELECT customer_id, count(*) AS n FROM shop.orders GROUP BY customer_id;
`;

const PG_TABLES = ['shop.customers', 'shop.orders', 'shop.order_lines', 'shop.line_notes', 'public.events'];
/** Tables no foreign key points at: the strategy's limit holds for them exactly. */
const PG_UNREFERENCED = ['shop.line_notes', 'public.events'];
const PG_SOURCE_ROWS: Record<string, number> = {
  'shop.customers': 300,
  'shop.orders': 3000,
  'shop.order_lines': 6000,
  'shop.line_notes': 1000,
  'public.events': 500,
};
/** Rows as text, keyed so a sample's rows can be looked up in the source. */
const PG_ROWS: Record<string, string> = {
  'shop.customers': 'SELECT id::text AS k, t::text AS v FROM shop.customers t',
  'shop.orders': 'SELECT id::text AS k, t::text AS v FROM shop.orders t',
  'shop.order_lines': `SELECT order_id || '/' || line AS k, t::text AS v FROM shop.order_lines t`,
  'shop.line_notes': 'SELECT id::text AS k, t::text AS v FROM shop.line_notes t',
  'public.events': 'SELECT at::text AS k, t::text AS v FROM public.events t',
};

interface SampleTableMeta {
  schema: string;
  name: string;
  rows: number;
  keptRows: number;
  sampledRows: number;
  referencedRows: number;
  droppedRows: number;
}

interface SampleMeta {
  kind: string;
  engine: string;
  database: string;
  format: string;
  sha256: string;
  sizeBytes: number;
  sample: { strategy: string; value: number; keepReferences: boolean; tables: SampleTableMeta[] };
  databaseProperties?: Record<string, unknown>;
}

const pgSource = uniqueName('pg_sample');
const mySource = uniqueName('my_sample');
const pgCreated: string[] = [pgSource];
const myCreated: string[] = [mySource];

async function readMeta(file: string): Promise<SampleMeta> {
  return JSON.parse(await readFile(`${file}.meta.json`, 'utf8')) as SampleMeta;
}

function metaTable(meta: SampleMeta, qualified: string): SampleTableMeta {
  const t = meta.sample.tables.find((x) => `${x.schema}.${x.name}` === qualified || x.name === qualified);
  if (!t) throw new Error(`no sample entry for ${qualified} in ${JSON.stringify(meta.sample.tables)}`);
  return t;
}

/** The per-table summary line: `  <table>  <rows>  <kept>  <sampled>  <referenced>  <dropped>`. */
function summaryRow(stdout: string, name: string): number[] {
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const m = new RegExp(`^\\s+${escaped}\\s+~?(\\d+)\\s+(\\d+)\\s+(\\d+)\\s+(\\d+)\\s+(\\d+)\\s*$`, 'm').exec(
    stdout,
  );
  if (!m) throw new Error(`no summary line for ${name} in:\n${stdout}`);
  return m.slice(1).map(Number);
}

function decompress(file: string): string {
  return execFileSync('zstd', ['-dc', file], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
}

async function sample(
  args: string[],
  dir: string,
  source: string,
  extra: string[],
): Promise<{ file: string; meta: SampleMeta; stdout: string; stderr: string }> {
  const r = await cli([...args, '--backup-dir', dir, 'backup', 'sample', source, ...extra]);
  expectExit(r, 0);
  expect(r.stdout).toContain('Sample backup complete:');
  const file = await onlyBackup(dir);
  const meta = await readMeta(file);
  expect(meta.kind).toBe('sample');
  expect(meta.format).toBe('plain');
  expect(meta.sha256).toBe(await sha256File(file));
  // What a restore with --create gives the copy: the source database's own properties.
  expect(meta.databaseProperties).toHaveProperty(meta.engine === 'postgres' ? 'encoding' : 'collation');
  expect(await listDir(dir)).toEqual(
    [path.basename(file), `${path.basename(file)}.meta.json`, `${path.basename(file)}.sha256`].sort(),
  );
  return { file, meta, stdout: r.stdout, stderr: r.stderr };
}

/** The bookkeeping every sample must satisfy, and the summary printed for every table. */
function checkAccounting(
  meta: SampleMeta,
  stdout: string,
  tables: string[],
  label: (t: SampleTableMeta) => string,
) {
  for (const name of tables) {
    const t = metaTable(meta, name);
    expect(t.keptRows).toBe(t.sampledRows + t.referencedRows - t.droppedRows);
    if (meta.sample.keepReferences) expect(t.droppedRows).toBe(0);
    else expect(t.referencedRows).toBe(0);
    expect(summaryRow(stdout, label(t))).toEqual([
      t.rows,
      t.keptRows,
      t.sampledRows,
      t.referencedRows,
      t.droppedRows,
    ]);
  }
}

async function pgRestore(file: string): Promise<string> {
  const target = uniqueName('pg_sample_dst');
  pgCreated.push(target);
  const r = await cli([...pgArgs(), 'restore', 'single', file, '--target', target, '--create', '--confirm']);
  expectExit(r, 0);
  expect(r.stdout).toContain(`Restore complete: "${target}"`);
  return target;
}

/** Every foreign key of the source exists in the copy and was validated when it was added. */
async function expectPgForeignKeysValid(target: string): Promise<void> {
  const fks = `SELECT conrelid::regclass::text AS tbl, conname, convalidated FROM pg_constraint
                WHERE contype = 'f' ORDER BY 1, 2`;
  const source = await pgQuery<{ tbl: string; conname: string }>(pgSource, fks);
  const copy = await pgQuery<{ tbl: string; conname: string; convalidated: boolean }>(target, fks);
  expect(copy.map((f) => [f.tbl, f.conname])).toEqual(source.map((f) => [f.tbl, f.conname]));
  expect(copy.length).toBe(4);
  expect(copy.every((f) => f.convalidated)).toBe(true);
  // And, spelled out: every child row's parent is there.
  const orphans = await pgQuery<{ n: string }>(
    target,
    `SELECT (SELECT count(*) FROM shop.orders o WHERE NOT EXISTS (SELECT 1 FROM shop.customers c WHERE c.id = o.customer_id))
          + (SELECT count(*) FROM shop.customers c WHERE c.referrer_id IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM shop.customers r WHERE r.id = c.referrer_id))
          + (SELECT count(*) FROM shop.order_lines l WHERE NOT EXISTS (SELECT 1 FROM shop.orders o WHERE o.id = l.order_id))
          + (SELECT count(*) FROM shop.line_notes n WHERE NOT EXISTS
               (SELECT 1 FROM shop.order_lines l WHERE l.order_id = n.order_id AND l.line = n.line)) AS n`,
  );
  expect(orphans).toEqual([{ n: '0' }]);
}

/** Row counts match the metadata, and every row of the copy is identical to its source row. */
async function expectPgRowsFromSource(target: string, meta: SampleMeta): Promise<void> {
  for (const table of PG_TABLES) {
    const copy = await pgQuery<{ k: string; v: string }>(target, PG_ROWS[table] ?? '');
    expect(copy.length, table).toBe(metaTable(meta, table).keptRows);
    const source = new Map(
      (await pgQuery<{ k: string; v: string }>(pgSource, PG_ROWS[table] ?? '')).map((r) => [r.k, r.v]),
    );
    for (const row of copy) expect(row.v, `${table} ${row.k}`).toBe(source.get(row.k));
  }
}

beforeAll(async () => {
  await createPgDatabase(pgSource);
  await pgExec(pgSource, PG_FIXTURE);
});

afterAll(async () => {
  for (const db of pgCreated) await dropPgDatabase(db);
  for (const db of myCreated) await dropMyDatabase(db);
});

describe('backup sample: PostgreSQL', () => {
  it('--sample-ratio 10 keeps every 10th row plus the rows they reference, and restores with valid foreign keys', async () => {
    const dir = await tempDir();
    try {
      const { file, meta, stdout } = await sample(pgArgs(), dir, pgSource, ['--sample-ratio', '10']);
      expect(path.basename(file)).toMatch(
        new RegExp(`^${pgSource}_sample-ratio10_\\d{8}_\\d{6}\\.sql\\.zst$`),
      );
      expect(meta.sample).toMatchObject({ strategy: 'ratio', value: 10, keepReferences: true });
      checkAccounting(meta, stdout, PG_TABLES, (t) => `${t.schema}.${t.name}`);
      for (const table of PG_TABLES) {
        const t = metaTable(meta, table);
        expect(t.rows, table).toBe(PG_SOURCE_ROWS[table]);
        expect(t.sampledRows, table).toBe(Math.ceil((PG_SOURCE_ROWS[table] ?? 0) / 10));
      }
      for (const table of PG_UNREFERENCED) expect(metaTable(meta, table).referencedRows, table).toBe(0);
      // About a tenth of the order lines: 600 sampled, plus at most one per kept line note.
      const lines = metaTable(meta, 'shop.order_lines');
      expect(lines.keptRows).toBeGreaterThanOrEqual(600);
      expect(lines.keptRows).toBeLessThanOrEqual(600 + metaTable(meta, 'shop.line_notes').keptRows);
      // The sampled orders and lines reference other orders and customers: the closure added them.
      expect(metaTable(meta, 'shop.orders').referencedRows).toBeGreaterThan(0);
      expect(metaTable(meta, 'shop.customers').referencedRows).toBeGreaterThan(0);
      expect(stdout).toMatch(/^Sample: ratio 10 \(every 10th row\), referenced rows added$/m);

      // A real dump: schema from pg_dump, rows as COPY blocks with data, constraints after the data.
      const sql = decompress(file);
      expect(sql).toContain('PostgreSQL database dump');
      expect(sql).toContain('COPY "shop"."orders" ("id", "customer_id", "note", "total") FROM stdin;\n1\t');
      expect(sql).not.toContain('TO STDOUT');
      const copyAt = sql.indexOf('COPY "shop"."orders"');
      expect(copyAt).toBeLessThan(sql.indexOf('ADD CONSTRAINT orders_customer_id_fkey'));
      expect(copyAt).toBeLessThan(sql.indexOf('CREATE TRIGGER orders_stamp'));

      const verify = await cli(['verify-backup', file]);
      expectExit(verify, 0);

      const target = await pgRestore(file);
      await expectPgForeignKeysValid(target);
      // Same bytes as the source for every kept row: the trigger did not fire during the load.
      await expectPgRowsFromSource(target, meta);
      const [trigger] = await pgQuery<{ n: string }>(
        target,
        `SELECT count(*) AS n FROM pg_trigger WHERE tgname = 'orders_stamp'`,
      );
      expect(trigger?.n).toBe('1');
      // The materialized view was refreshed from the sampled rows.
      const [mv] = await pgQuery<{ n: string; total: string }>(
        target,
        `SELECT (SELECT sum(n) FROM shop.order_counts) AS n, (SELECT count(*) FROM shop.orders) AS total`,
      );
      expect(mv?.n).toBe(mv?.total);
      // Sequences continue after the source's values, so new rows do not collide with sampled ones.
      const [seq] = await pgQuery<{ c: string; o: string }>(
        target,
        `SELECT nextval('shop.customers_id_seq')::text AS c,
                (SELECT nextval(pg_get_serial_sequence('shop.orders', 'id')))::text AS o`,
      );
      expect(Number(seq?.c)).toBe(301);
      expect(Number(seq?.o)).toBe(3001);
    } finally {
      await removeDir(dir);
    }
  });

  it('--sample-count 5 keeps at most 5 rows of unreferenced tables, plus the parents those rows need', async () => {
    const dir = await tempDir();
    try {
      const { file, meta, stdout } = await sample(pgArgs(), dir, pgSource, [
        '--sample-strategy',
        'count',
        '--sample-value',
        '5',
      ]);
      expect(path.basename(file)).toContain('_sample-count5_');
      checkAccounting(meta, stdout, PG_TABLES, (t) => `${t.schema}.${t.name}`);
      for (const table of PG_TABLES) expect(metaTable(meta, table).sampledRows, table).toBe(5);
      for (const table of PG_UNREFERENCED) expect(metaTable(meta, table).keptRows, table).toBe(5);
      // Referenced tables hold their own five rows plus what the kept rows reference.
      expect(metaTable(meta, 'shop.order_lines').keptRows).toBeLessThanOrEqual(10);
      expect(metaTable(meta, 'shop.orders').keptRows).toBeGreaterThan(5);
      const target = await pgRestore(file);
      await expectPgForeignKeysValid(target);
      await expectPgRowsFromSource(target, meta);
    } finally {
      await removeDir(dir);
    }
  });

  it('--sample-percent 10 --no-keep-references leaves out rows whose parents were not sampled, with a warning', async () => {
    const dir = await tempDir();
    try {
      const { file, meta, stdout, stderr } = await sample(pgArgs(), dir, pgSource, [
        '--sample-percent',
        '10',
        '--no-keep-references',
      ]);
      expect(meta.sample).toMatchObject({ strategy: 'percent', value: 10, keepReferences: false });
      checkAccounting(meta, stdout, PG_TABLES, (t) => `${t.schema}.${t.name}`);
      // About 10 %: Bernoulli sampling of 500 rows.
      const events = metaTable(meta, 'public.events');
      expect(events.keptRows).toBeGreaterThan(15);
      expect(events.keptRows).toBeLessThan(100);
      // Most sampled orders belong to customers outside the sample: they are left out, not kept dangling.
      const dropped = meta.sample.tables.reduce((s, t) => s + t.droppedRows, 0);
      expect(dropped).toBeGreaterThan(0);
      expect(metaTable(meta, 'shop.orders').droppedRows).toBeGreaterThan(0);
      expect(stderr).toContain('warning: --no-keep-references:');
      expect(stdout).toContain('rows with missing references left out');
      // Still a copy that restores with every constraint enabled and validated.
      const target = await pgRestore(file);
      await expectPgForeignKeysValid(target);
      await expectPgRowsFromSource(target, meta);
    } finally {
      await removeDir(dir);
    }
  });

  it('rejects invalid sample options with exit 2 and a hint, before connecting', async () => {
    const dir = await tempDir();
    try {
      const cases: Array<{ args: string[]; message: RegExp; hint: RegExp }> = [
        { args: ['--sample-percent', '150'], message: /percentage cannot exceed 100/, hint: /0 < N ≤ 100/ },
        {
          args: ['--sample-ratio', '1'],
          message: /ratio must be at least 2/,
          hint: /--sample-ratio N with N ≥ 2/,
        },
        {
          args: ['--sample-ratio', '10', '--sample-count', '5'],
          message: /--sample-ratio and --sample-count cannot be used together/,
          hint: /only one of/,
        },
        {
          args: ['--sample-strategy', 'count', '--sample-value', '0'],
          message: /greater than 0/,
          hint: /--sample-count N/,
        },
        { args: ['--sample-count', '2.5'], message: /whole number/, hint: /--sample-count N/ },
        { args: ['--sample-percent', 'ten'], message: /not a number/, hint: /--sample-percent N/ },
        {
          args: ['--sample-ratio', '5', '--sample-value', '3'],
          message: /cannot be combined/,
          hint: /one form/,
        },
        { args: ['--sample-strategy', 'percent'], message: /needs --sample-value/, hint: /--sample-value N/ },
      ];
      // A server that does not exist: validation must fail first, with exit 2 and not a connection error.
      for (const c of cases) {
        const r = await cli([
          '--host',
          '127.0.0.1',
          '--port',
          '9',
          '--backup-dir',
          dir,
          'backup',
          'sample',
          pgSource,
          ...c.args,
        ]);
        expect(r.code, `${c.args.join(' ')}\n${r.stderr}`).toBe(2);
        expect(r.stderr).toMatch(c.message);
        expect(r.stderr).toMatch(/^hint: /m);
        expect(r.stderr).toMatch(c.hint);
      }
      const bad = await cli([...pgArgs(), 'backup', 'sample', pgSource, '--sample-strategy', 'half']);
      expect(bad.code, bad.stderr).toBe(2);
      expect(bad.stderr).toContain('Unknown sample strategy "half"');
      expect(bad.stderr).toContain('hint: Use ratio, percent or count.');
      const unknown = await cli([...pgArgs(), 'backup', 'sample', pgSource, '--sample-rate', '3']);
      expect(unknown.code, unknown.stderr).toBe(2);
      expect(unknown.stderr).toContain("unknown option '--sample-rate'");
      expect(await listDir(dir)).toEqual([]);
    } finally {
      await removeDir(dir);
    }
  });
});

/** The same chain on InnoDB, with the self-reference pointing at larger ids (load order matters). */
const MY_FIXTURE = String.raw`
CREATE TABLE customers (
  id INT AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(100) NOT NULL,
  referrer_id INT NULL,
  avatar BLOB,
  CONSTRAINT customers_referrer FOREIGN KEY (referrer_id) REFERENCES customers (id)
) ENGINE=InnoDB;
CREATE TABLE orders (
  id BIGINT AUTO_INCREMENT PRIMARY KEY,
  customer_id INT NOT NULL,
  note TEXT,
  total DECIMAL(10, 2) NOT NULL,
  placed DATETIME(3) NOT NULL,
  note_len INT AS (CHAR_LENGTH(note)) VIRTUAL,
  CONSTRAINT orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id)
) ENGINE=InnoDB;
CREATE TABLE order_lines (
  order_id BIGINT NOT NULL,
  line INT NOT NULL,
  qty INT NOT NULL,
  PRIMARY KEY (order_id, line),
  CONSTRAINT lines_order FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE
) ENGINE=InnoDB;
CREATE TABLE line_notes (
  id INT AUTO_INCREMENT PRIMARY KEY,
  order_id BIGINT NOT NULL,
  line INT NOT NULL,
  body VARCHAR(200),
  CONSTRAINT notes_line FOREIGN KEY (order_id, line) REFERENCES order_lines (order_id, line)
) ENGINE=InnoDB;
CREATE TABLE events (at DATETIME NOT NULL, payload JSON) ENGINE=InnoDB;
CREATE TRIGGER orders_stamp BEFORE INSERT ON orders FOR EACH ROW SET NEW.note = CONCAT(NEW.note, ' (stamped)');
INSERT INTO customers (id, name, referrer_id, avatar)
  SELECT seq, CONCAT('customer ', seq), IF(seq % 10 = 0, NULL, seq + 1),
         IF(seq % 3 = 0, NULL, CONCAT(UNHEX('00FF0A0D5C27'), UNHEX(SHA2(seq, 256))))
    FROM seq_1_to_300 ORDER BY seq DESC;
INSERT INTO orders (customer_id, note, total, placed)
  SELECT 1 + (seq * 7) % 300, CONCAT('order\t', seq, ' it''s "quoted" \\ Ünï 😀\nline 2'), (seq % 1000) / 10,
         '2024-01-01 00:00:00.123' + INTERVAL seq MINUTE
    FROM seq_1_to_3000;
INSERT INTO order_lines SELECT o.id, l.seq, 1 + (o.id + l.seq) % 5 FROM orders o JOIN seq_1_to_2 l;
INSERT INTO line_notes (order_id, line, body)
  SELECT 1 + (seq * 13) % 3000, 1 + seq % 2, CONCAT('note ', seq) FROM seq_1_to_1000;
INSERT INTO events SELECT '2024-01-01 00:00:00' + INTERVAL seq HOUR, JSON_OBJECT('n', seq) FROM seq_1_to_500;
INSERT INTO events VALUES ('2030-01-01 00:00:00', NULL), ('2030-01-01 00:00:00', NULL);
`;

const MY_TABLES = ['customers', 'orders', 'order_lines', 'line_notes', 'events'];

/** Rows of the copy that have no identical row in the source (per table), and dangling references. */
async function expectMyCopyConsistent(target: string, meta: SampleMeta): Promise<void> {
  const s = `\`${mySource}\``;
  const d = `\`${target}\``;
  const [row] = await myQuery<Record<string, string>>(
    undefined,
    `SELECT
      (SELECT COUNT(*) FROM ${d}.customers x LEFT JOIN ${s}.customers y ON y.id = x.id AND y.name = x.name
         AND y.referrer_id <=> x.referrer_id AND y.avatar <=> x.avatar WHERE y.id IS NULL) AS customers,
      (SELECT COUNT(*) FROM ${d}.orders x LEFT JOIN ${s}.orders y ON y.id = x.id AND y.customer_id = x.customer_id
         AND BINARY y.note = BINARY x.note AND y.total = x.total AND y.placed = x.placed WHERE y.id IS NULL) AS orders,
      (SELECT COUNT(*) FROM ${d}.order_lines x LEFT JOIN ${s}.order_lines y ON y.order_id = x.order_id
         AND y.line = x.line AND y.qty = x.qty WHERE y.order_id IS NULL) AS order_lines,
      (SELECT COUNT(*) FROM ${d}.line_notes x LEFT JOIN ${s}.line_notes y ON y.id = x.id AND y.order_id = x.order_id
         AND y.line = x.line AND y.body <=> x.body WHERE y.id IS NULL) AS line_notes,
      (SELECT COUNT(*) FROM ${d}.events x WHERE NOT EXISTS (SELECT 1 FROM ${s}.events y WHERE y.at = x.at
         AND y.payload <=> x.payload)) AS events,
      (SELECT COUNT(*) FROM ${d}.orders o LEFT JOIN ${d}.customers c ON c.id = o.customer_id WHERE c.id IS NULL)
      + (SELECT COUNT(*) FROM ${d}.customers c LEFT JOIN ${d}.customers r ON r.id = c.referrer_id
           WHERE c.referrer_id IS NOT NULL AND r.id IS NULL)
      + (SELECT COUNT(*) FROM ${d}.order_lines l LEFT JOIN ${d}.orders o ON o.id = l.order_id WHERE o.id IS NULL)
      + (SELECT COUNT(*) FROM ${d}.line_notes n LEFT JOIN ${d}.order_lines l ON l.order_id = n.order_id
           AND l.line = n.line WHERE l.order_id IS NULL) AS dangling,
      (SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ?) AS fks,
      (SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?) AS triggers`,
    [target, target],
  );
  expect(row).toEqual({
    customers: '0',
    orders: '0',
    order_lines: '0',
    line_notes: '0',
    events: '0',
    dangling: '0',
    fks: '4',
    triggers: '1',
  });
  for (const table of MY_TABLES) {
    const [count] = await myQuery<{ n: string }>(target, `SELECT COUNT(*) AS n FROM \`${table}\``);
    expect(Number(count?.n), table).toBe(metaTable(meta, table).keptRows);
  }
}

async function myRestore(file: string): Promise<string> {
  const target = uniqueName('my_sample_dst');
  myCreated.push(target);
  const r = await cli([...myArgs(), 'restore', 'single', file, '--target', target, '--create', '--confirm']);
  expectExit(r, 0);
  return target;
}

/** The part of the script dbbackup wrote itself (between the schema and the triggers). */
function dataSection(sql: string): string {
  const start = sql.indexOf('-- dbbackup sample data:');
  const end = sql.indexOf('SET FOREIGN_KEY_CHECKS=@DBB_OLD_FOREIGN_KEY_CHECKS;');
  expect(start).toBeGreaterThan(0);
  expect(end).toBeGreaterThan(start);
  return sql.slice(start, end);
}

describe('backup sample: MariaDB', () => {
  beforeAll(async () => {
    await createMyDatabase(mySource);
    await myExec(mySource, MY_FIXTURE);
  });

  it('--sample-ratio 10 writes INSERTs parent-first that load with FOREIGN_KEY_CHECKS=1', async () => {
    const dir = await tempDir();
    try {
      const { file, meta, stdout } = await sample(myArgs(), dir, mySource, ['--sample-ratio', '10']);
      expect(meta.engine).toBe('mariadb');
      expect(path.basename(file)).toMatch(
        new RegExp(`^${mySource}_sample-ratio10_\\d{8}_\\d{6}\\.sql\\.zst$`),
      );
      checkAccounting(meta, stdout, MY_TABLES, (t) => t.name);
      expect(metaTable(meta, 'line_notes')).toMatchObject({ rows: 1000, sampledRows: 100, keptRows: 100 });
      expect(metaTable(meta, 'events')).toMatchObject({ rows: 502, keptRows: 51 });
      expect(metaTable(meta, 'order_lines').sampledRows).toBe(600);
      expect(metaTable(meta, 'customers').referencedRows).toBeGreaterThan(0);

      const sql = decompress(file);
      expect(sql).toMatch(/^-- MariaDB dump/m);
      const data = dataSection(sql);
      expect(data).toContain('FOREIGN_KEY_CHECKS=1');
      expect(data).not.toContain('FOREIGN_KEY_CHECKS=0');
      // Referenced tables load first; the trigger is created only after the data.
      expect(data.indexOf('INSERT INTO `customers`')).toBeLessThan(data.indexOf('INSERT INTO `orders`'));
      expect(data.indexOf('INSERT INTO `orders`')).toBeLessThan(data.indexOf('INSERT INTO `order_lines`'));
      expect(data.indexOf('INSERT INTO `order_lines`')).toBeLessThan(
        data.indexOf('INSERT INTO `line_notes`'),
      );
      expect(sql.indexOf('INSERT INTO `orders`')).toBeLessThan(sql.indexOf('orders_stamp'));
      // The generated column is not written.
      expect(data).toContain('INSERT INTO `orders` (`id`, `customer_id`, `note`, `total`, `placed`) VALUES');

      const target = await myRestore(file);
      await expectMyCopyConsistent(target, meta);
    } finally {
      await removeDir(dir);
    }
  });

  it('--sample-count 5 and --no-keep-references: both restore with every reference intact', async () => {
    const dir = await tempDir();
    try {
      const { file, meta, stdout } = await sample(myArgs(), dir, mySource, ['--sample-count', '5']);
      checkAccounting(meta, stdout, MY_TABLES, (t) => t.name);
      expect(metaTable(meta, 'line_notes').keptRows).toBe(5);
      expect(metaTable(meta, 'events').keptRows).toBe(5);
      // customers 1..5 reference 2..6: the closure walks the chain up to the next row without a referrer.
      expect(metaTable(meta, 'customers').keptRows).toBeGreaterThan(5);
      await expectMyCopyConsistent(await myRestore(file), meta);
    } finally {
      await removeDir(dir);
    }
    const dir2 = await tempDir();
    try {
      const { file, meta, stdout, stderr } = await sample(myArgs(), dir2, mySource, [
        '--sample-ratio',
        '10',
        '--no-keep-references',
      ]);
      checkAccounting(meta, stdout, MY_TABLES, (t) => t.name);
      expect(meta.sample.keepReferences).toBe(false);
      expect(metaTable(meta, 'orders').droppedRows).toBeGreaterThan(0);
      expect(stderr).toContain('warning: --no-keep-references:');
      await expectMyCopyConsistent(await myRestore(file), meta);
    } finally {
      await removeDir(dir2);
    }
  });
});
