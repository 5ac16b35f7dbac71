import path from 'node:path';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { afterAll, describe, expect, it } from 'vitest';
import { loadMyFidelity, loadPgFidelity } from '../harness/fixtures.js';
import { mySnapshot } from '../harness/my-snapshot.js';
import { createMyDatabase, dropMyDatabase, myExec, myQuery } from '../harness/mysql.js';
import { createPgDatabase, dropPgDatabase, pgExec, pgQuery } from '../harness/pg.js';
import { pgSnapshot } from '../harness/pg-snapshot.js';
import { run } from '../harness/proc.js';
import { myServer, pgServer, pgUrl } from '../harness/servers.js';

const unique = (prefix: string) => `${prefix}_${Date.now()}_${Math.random().toString(36).slice(2, 8)}`;

describe('test servers', () => {
  it('runs a private PostgreSQL and MariaDB, not the system ones', async () => {
    const [pgVersion] = await pgQuery<{ v: string }>('postgres', 'SELECT version() AS v');
    expect(pgVersion?.v).toMatch(/^PostgreSQL \d+/);
    const [myVersion] = await myQuery<{ v: string }>(undefined, 'SELECT VERSION() AS v');
    expect(myVersion?.v).toMatch(/MariaDB/);
    expect(pgServer().port).not.toBe(5432);
    expect(myServer().port).not.toBe(3306);
  });
});

describe('PostgreSQL fixture and snapshot', () => {
  const db = unique('h_pg');
  const copy = `${db}_copy`;
  afterAll(async () => {
    await dropPgDatabase(db);
    await dropPgDatabase(copy);
  });

  it('loads quickly and snapshots deterministically', async () => {
    await createPgDatabase(db);
    const started = Date.now();
    await loadPgFidelity(db);
    expect(Date.now() - started).toBeLessThan(10_000);

    const first = await pgSnapshot(db);
    expect(await pgSnapshot(db)).toEqual(first);
    expect(first.schemas).toEqual(['Odd Schema', 'public', 'sales']);
    expect(first.tables['sales.orders']?.rows).toBe(5400);
    expect(first.tables['public.no_pk_dupes']?.rows).toBe(5);
    expect(first.largeObjects.count).toBe(4);
    expect(first.sequences['sales.invoice_no']).toMatchObject({ lastValue: '424242', isCalled: true });
    expect(first.sequences['public.reset_seq']).toMatchObject({ lastValue: '77', isCalled: false });
    expect(first.matviews['sales.monthly_revenue']?.rows).toBeGreaterThan(0);
    expect(Object.keys(first.triggers)).toEqual(['sales.customers.customers_touch']);
    expect(first.comments['table sales.documents']).toBe('Documents with large objects');
  });

  it('survives a pg_dump/pg_restore round trip unchanged (the snapshot is not over-strict)', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'dbbackup-h-'));
    try {
      const file = path.join(dir, 'dump.pgc');
      const bin = (tool: string) => path.join(pgServer().binDir, tool);
      const dump = await run(bin('pg_dump'), ['-Fc', '-f', file, '-d', pgUrl(db)]);
      expect(dump.stderr).toBe('');
      await createPgDatabase(copy);
      const restore = await run(bin('pg_restore'), ['--exit-on-error', '-d', pgUrl(copy), file]);
      expect(restore.stderr).toBe('');
      expect(await pgSnapshot(copy)).toEqual(await pgSnapshot(db));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('notices when a single value changes', async () => {
    const before = await pgSnapshot(db);
    await pgExec(db, 'UPDATE sales.orders SET amount = amount + 0.01 WHERE id = 1');
    const after = await pgSnapshot(db);
    expect(after).not.toEqual(before);
    expect(after.tables['sales.orders']?.rows).toBe(before.tables['sales.orders']?.rows);
    expect(after.tables['sales.orders']?.checksum).not.toBe(before.tables['sales.orders']?.checksum);
    expect({ ...after.tables, 'sales.orders': null }).toEqual({ ...before.tables, 'sales.orders': null });
  });
});

describe('MariaDB fixture and snapshot', () => {
  const db = unique('h_my');
  const copy = `${db}_copy`;
  afterAll(async () => {
    await dropMyDatabase(db);
    await dropMyDatabase(copy);
  });

  it('loads quickly and snapshots deterministically', async () => {
    await createMyDatabase(db);
    const started = Date.now();
    await loadMyFidelity(db);
    expect(Date.now() - started).toBeLessThan(10_000);

    const first = await mySnapshot(db);
    expect(await mySnapshot(db)).toEqual(first);
    expect(first.tables.orders?.rows).toBe(5400);
    // InnoDB reserves AUTO_INCREMENT values in blocks for INSERT ... SELECT, so only a lower bound.
    expect(Number(first.tables.orders?.autoIncrement)).toBeGreaterThanOrEqual(6001);
    expect(first.tables.legacy_log).toMatchObject({ engine: 'MyISAM', rows: 502 });
    expect(Object.keys(first.routines).sort()).toEqual(['FUNCTION customer_total', 'PROCEDURE add_order']);
    expect(Object.keys(first.triggers)).toEqual(['customers.customers_normalize']);
    expect(first.events.purge_legacy_log).toMatch(/DISABLE/);
    expect(first.views.customer_totals).toMatch(/SQL SECURITY INVOKER/);
    expect(first.foreignKeys['orders.orders_customer_fk']).toMatch(/REFERENCES =\.customers \(id\)/);
  });

  it('survives a mariadb-dump/mariadb round trip unchanged (the snapshot is not over-strict)', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'dbbackup-h-'));
    try {
      const file = path.join(dir, 'dump.sql');
      const { host, port, user } = myServer();
      const conn = ['--no-defaults', '--protocol=tcp', `-h${host}`, `-P${port}`, `-u${user}`];
      const dump = await run('mariadb-dump', [
        ...conn,
        '--single-transaction',
        '--routines',
        '--events',
        '--triggers',
        '--hex-blob',
        `--result-file=${file}`,
        db,
      ]);
      expect(dump.stderr).toBe('');
      await createMyDatabase(copy);
      const restore = await run('mariadb', [...conn, copy, '-e', `source ${file}`]);
      expect(restore.stderr).toBe('');
      expect(await mySnapshot(copy)).toEqual(await mySnapshot(db));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('notices when a single value changes', async () => {
    const before = await mySnapshot(db);
    await myExec(db, "UPDATE texts SET maybe = 'changed' WHERE id = 1");
    const after = await mySnapshot(db);
    expect(after).not.toEqual(before);
    expect(after.tables.texts?.checksum).not.toBe(before.tables.texts?.checksum);
    expect({ ...after.tables, texts: null }).toEqual({ ...before.tables, texts: null });
  });
});
