import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lockPgGlobals, unlockPgGlobals } from '../harness/cluster-lock.js';
import { dropPgDatabase, pgExec, pgIdent, pgQuery, withPg } from '../harness/pg.js';
import { writeFile } from 'node:fs/promises';
import { cli, copyBackup, expectExit, pgArgs, removeDir, tempDir, uniqueName } from './util.js';

/**
 * Issue 12: a single restore that creates the database gives back the database itself — owner,
 * encoding and locale, privileges (PUBLIC's CONNECT revoked), connection limit, settings (for every
 * role and for one role in the database), comment and tablespace — read back from the catalogs and
 * compared with the original, for both dump formats, with --create and with --clean.
 */
const P = uniqueName('pgdbp');
const I = pgIdent;
const role = { owner: `${P}_owner`, reader: `${P}_reader`, gone: `${P}_gone` };
const source = `${P}_src`;
const tablespace = `${P}_ts`;
let dir: string;
/** One backup per format, taken while every role existed. */
const backups: Record<'custom' | 'plain', string> = { custom: '', plain: '' };
let original: DbState;

interface DbState {
  owner: string;
  encoding: string;
  datcollate: string;
  datctype: string;
  datlocprovider: string;
  daticulocale: string | null;
  datconnlimit: number;
  acl: string[] | null;
  tablespace: string;
  comment: string | null;
  settings: string[] | null;
  /** What a session in the database gets from its settings. */
  searchPath: string;
  timeZone: string;
  rows: number;
}

/** The database's properties as the catalogs hold them, and what a session there sees. */
async function dbState(name: string): Promise<DbState> {
  const [row] = await pgQuery<Omit<DbState, 'searchPath' | 'timeZone' | 'rows'> & Record<string, unknown>>(
    'postgres',
    `SELECT pg_get_userbyid(d.datdba) AS owner, pg_encoding_to_char(d.encoding) AS encoding,
            d.datcollate, d.datctype, d.datlocprovider::text, d.daticulocale, d.datconnlimit,
            (SELECT array_agg(a::text ORDER BY a::text) FROM unnest(d.datacl) a) AS acl,
            (SELECT spcname FROM pg_tablespace t WHERE t.oid = d.dattablespace) AS tablespace,
            shobj_description(d.oid, 'pg_database') AS comment,
            (SELECT array_agg(x ORDER BY x)
               FROM (SELECT coalesce(pg_get_userbyid(nullif(s.setrole, 0)), '(all roles)') || ': '
                            || array_to_string(s.setconfig, ' | ') AS x
                       FROM pg_db_role_setting s WHERE s.setdatabase = d.oid) y) AS settings
       FROM pg_database d WHERE d.datname = $1`,
    [name],
  );
  if (!row) throw new Error(`database ${name} does not exist`);
  const session = await withPg(name, async (c) => ({
    searchPath: (await c.query<{ v: string }>("SELECT current_setting('search_path') AS v")).rows[0]?.v ?? '',
    timeZone: (await c.query<{ v: string }>("SELECT current_setting('TimeZone') AS v")).rows[0]?.v ?? '',
    rows: Number((await c.query<{ n: string }>('SELECT count(*) AS n FROM app.items')).rows[0]?.n),
  }));
  return { ...row, ...session };
}

/** `original` with the entries of `name`'s role taken out (that role is gone on the target). */
function without(state: DbState, name: string): DbState {
  return {
    ...state,
    acl: state.acl?.filter((a) => !a.startsWith(`${name}=`)) ?? null,
    settings: state.settings?.filter((s) => !s.startsWith(`${name}: `)) ?? null,
  };
}

async function databaseExists(name: string): Promise<boolean> {
  return (await pgQuery('postgres', 'SELECT 1 FROM pg_database WHERE datname = $1', [name])).length > 0;
}

function restore(backup: string, target: string, ...extra: string[]): ReturnType<typeof cli> {
  return cli([...pgArgs(), 'restore', 'single', backup, '--target', target, ...extra]);
}

// Roles are server-wide: files that restore globals would bring back the role this file drops.
beforeAll(() => lockPgGlobals(), 900_000);

beforeAll(async () => {
  dir = await tempDir('dbb-pg-dbprops-');
  await pgExec(
    'postgres',
    `CREATE ROLE ${I(role.owner)} LOGIN; CREATE ROLE ${I(role.reader)} LOGIN; CREATE ROLE ${I(role.gone)} LOGIN;`,
  );
  await withPg('postgres', async (c) => {
    // A tablespace inside the data directory: no directory to prepare for the server's OS user.
    await c.query('SET allow_in_place_tablespaces = on');
    await c.query(`CREATE TABLESPACE ${I(tablespace)} LOCATION ''`);
  });
  await pgExec(
    'postgres',
    `CREATE DATABASE ${I(source)} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C.utf8'
       LOCALE_PROVIDER icu ICU_LOCALE 'de' CONNECTION LIMIT 25 TABLESPACE ${I(tablespace)}`,
  );
  await pgExec(
    'postgres',
    `ALTER DATABASE ${I(source)} OWNER TO ${I(role.owner)};
     REVOKE CONNECT, TEMPORARY ON DATABASE ${I(source)} FROM PUBLIC;
     GRANT CONNECT ON DATABASE ${I(source)} TO ${I(role.reader)};
     GRANT CONNECT, TEMPORARY ON DATABASE ${I(source)} TO ${I(role.gone)};
     ALTER DATABASE ${I(source)} SET search_path = app, "My Schema", public;
     ALTER DATABASE ${I(source)} SET "TimeZone" = 'Pacific/Auckland';
     ALTER DATABASE ${I(source)} SET bytea_output = 'escape';
     ALTER ROLE ${I(role.reader)} IN DATABASE ${I(source)} SET statement_timeout = '5s';
     ALTER ROLE ${I(role.gone)} IN DATABASE ${I(source)} SET work_mem = '16MB';
     COMMENT ON DATABASE ${I(source)} IS 'Production shop, "do not" drop';`,
  );
  await pgExec(
    source,
    `CREATE SCHEMA app; CREATE SCHEMA "My Schema";
     CREATE TABLE app.items (id int PRIMARY KEY, name text);
     INSERT INTO app.items SELECT g, 'item ' || g FROM generate_series(1, 200) g;
     ALTER TABLE app.items OWNER TO ${I(role.owner)};
     GRANT SELECT ON app.items TO ${I(role.reader)};`,
  );
  original = await dbState(source);
  for (const format of ['custom', 'plain'] as const) {
    const r = await cli([...pgArgs(), '--backup-dir', dir, 'backup', 'single', source, '--format', format]);
    expectExit(r, 0);
    const files = (await readdir(dir)).filter(
      (f) => f.startsWith(source) && !/\.(meta\.json|sha256)$/.test(f),
    );
    const fresh = files.find((f) => !Object.values(backups).includes(path.join(dir, f)));
    backups[format] = path.join(dir, fresh ?? '');
  }
});

afterAll(async () => {
  try {
    for (const row of await pgQuery<{ datname: string }>(
      'postgres',
      'SELECT datname FROM pg_database WHERE left(datname, length($1)) = $1',
      [P],
    ))
      await dropPgDatabase(row.datname);
    await pgExec('postgres', `DROP TABLESPACE IF EXISTS ${I(tablespace)}`);
    for (const name of Object.values(role)) await pgExec('postgres', `DROP ROLE IF EXISTS ${I(name)}`);
    if (dir) await removeDir(dir);
  } finally {
    await unlockPgGlobals();
  }
});

describe('PostgreSQL restore single: the database itself comes back', () => {
  it('the fixture has every property the tests claim', () => {
    expect(original).toMatchObject({
      owner: role.owner,
      encoding: 'UTF8',
      datcollate: 'C',
      datctype: 'C.utf8',
      datlocprovider: 'i',
      daticulocale: 'de',
      datconnlimit: 25,
      tablespace,
      comment: 'Production shop, "do not" drop',
      searchPath: 'app, "My Schema", public',
      timeZone: 'Pacific/Auckland',
      rows: 200,
    });
    // PUBLIC has nothing left (no `=…/owner` entry): it may not even connect.
    expect(original.acl).toEqual(
      [
        `${role.gone}=Tc/${role.owner}`,
        `${role.owner}=CTc/${role.owner}`,
        `${role.reader}=c/${role.owner}`,
      ].sort(),
    );
    expect(original.settings).toEqual(
      [
        '(all roles): search_path=app, "My Schema", public | TimeZone=Pacific/Auckland | bytea_output=escape',
        `${role.gone}: work_mem=16MB`,
        `${role.reader}: statement_timeout=5s`,
      ].sort(),
    );
  });

  it('records the properties in the metadata of a single backup', async () => {
    const meta = JSON.parse(await readFile(`${backups.custom}.meta.json`, 'utf8')) as {
      databaseProperties: Record<string, unknown>;
    };
    expect(meta.databaseProperties).toMatchObject({
      owner: role.owner,
      encoding: 'UTF8',
      collate: 'C',
      ctype: 'C.utf8',
      localeProvider: 'icu',
      locale: 'de',
      connectionLimit: 25,
      tablespace,
      comment: 'Production shop, "do not" drop',
    });
    expect(meta.databaseProperties.settings).toContainEqual({
      role: role.reader,
      name: 'statement_timeout',
      value: '5s',
    });
  });

  it('the dry run lists what will be applied, in order, and changes nothing', async () => {
    const target = `${P}_dry`;
    const r = await restore(backups.custom, target, '--create');
    expectExit(r, 0);
    const lines = r.stdout.split('\n');
    const at = (text: string): number => lines.findIndex((l) => l.includes(text));
    expect(r.stdout).toContain(
      `apply: when creating the database: encoding UTF8, LC_COLLATE C, LC_CTYPE C.utf8, locale provider icu, locale de, tablespace ${tablespace}`,
    );
    const order = [
      `apply: owner ${role.owner}`,
      'apply: revoke CONNECT, TEMPORARY from PUBLIC',
      `apply: grant CONNECT to ${role.reader}`,
      'apply: connection limit 25',
      'apply: setting search_path=app, "My Schema", public',
      `apply: setting statement_timeout=5s for role ${role.reader}`,
      'apply: comment',
    ].map(at);
    expect(order.every((i) => i > 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(r.stdout).toContain('Dry run: nothing was changed');
    expect(await databaseExists(target)).toBe(false);
  });

  for (const format of ['custom', 'plain'] as const) {
    it(`${format} format, --create: owner, locale, privileges, settings, comment and tablespace as the original`, async () => {
      const target = `${P}_${format}_create`;
      const r = await restore(backups[format], target, '--create', '--confirm');
      expectExit(r, 0);
      expect(r.stderr).not.toMatch(/warning/i);
      expect(await dbState(target)).toEqual(original);
    });

    it(`${format} format, --clean over an existing database: replaced by the original's properties`, async () => {
      const target = `${P}_${format}_clean`;
      await pgExec(
        'postgres',
        `CREATE DATABASE ${I(target)} TEMPLATE template0 ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'`,
      );
      await pgExec(
        'postgres',
        `ALTER DATABASE ${I(target)} SET work_mem = '1MB'; COMMENT ON DATABASE ${I(target)} IS 'old'`,
      );
      await pgExec(target, 'CREATE TABLE leftover (id int)');
      const r = await restore(backups[format], target, '--clean', '--confirm');
      expectExit(r, 0);
      expect(await dbState(target)).toEqual(original);
    });
  }

  it('into an existing empty database: its own properties are left alone, and the plan says so', async () => {
    const target = `${P}_existing`;
    await pgExec('postgres', `CREATE DATABASE ${I(target)} TEMPLATE template0`);
    await pgExec('postgres', `COMMENT ON DATABASE ${I(target)} IS 'mine'`);
    const r = await restore(backups.custom, target, '--confirm', '--no-owner');
    expectExit(r, 0);
    expect(r.stderr).toContain(
      `leave: all of them: restoring into the existing database "${target}" leaves its own properties`,
    );
    const state = await dbState(target);
    expect(state).toMatchObject({ owner: 'postgres', comment: 'mine', acl: null, settings: null, rows: 200 });
  });

  it('--no-owner: the restoring user owns it with default privileges; the other properties are applied', async () => {
    const target = `${P}_noowner`;
    const dry = await restore(backups.custom, target, '--create', '--no-owner');
    expectExit(dry, 0);
    expect(dry.stdout).toContain('leave: owner and privileges (--no-owner)');
    expect(dry.stdout).not.toMatch(/apply: (owner|revoke|grant)/);
    const r = await restore(backups.custom, target, '--create', '--no-owner', '--confirm');
    expectExit(r, 0);
    expect(await dbState(target)).toEqual({ ...original, owner: 'postgres', acl: null });
  });

  it("--no-db-properties: the server's encoding, locale and no settings or comment; owner and privileges applied", async () => {
    const target = `${P}_noprops`;
    const [template] = await pgQuery<{ datcollate: string; datctype: string; datlocprovider: string }>(
      'postgres',
      `SELECT datcollate, datctype, datlocprovider::text FROM pg_database WHERE datname = 'template0'`,
    );
    const dry = await restore(backups.custom, target, '--create', '--no-db-properties');
    expectExit(dry, 0);
    expect(dry.stdout).toMatch(/leave: encoding, LC_COLLATE, LC_CTYPE, .*settings.* \(--no-db-properties\)/);
    expect(dry.stdout).not.toContain('apply: when creating');
    const r = await restore(backups.custom, target, '--create', '--no-db-properties', '--confirm');
    expectExit(r, 0);
    const state = await dbState(target);
    expect(state).toMatchObject({
      owner: role.owner,
      acl: original.acl,
      datcollate: template?.datcollate,
      datctype: template?.datctype,
      datlocprovider: template?.datlocprovider,
      datconnlimit: -1,
      tablespace: 'pg_default',
      comment: null,
      settings: null,
      rows: 200,
    });
  });

  it('restore single --from-cluster applies the member database properties from the manifest', async () => {
    const clusterDir = await tempDir('dbb-pg-dbprops-cluster-');
    try {
      const r = await cli([
        ...pgArgs(),
        '--backup-dir',
        clusterDir,
        'backup',
        'cluster',
        '--include-database',
        source,
      ]);
      expectExit(r, 0);
      const cluster = (await readdir(clusterDir)).find((e) => e.startsWith('cluster_')) ?? '';
      const manifest = JSON.parse(
        await readFile(path.join(clusterDir, cluster, 'manifest.json'), 'utf8'),
      ) as {
        databases: Array<{ properties: Record<string, string | null>; databaseProperties: unknown }>;
      };
      expect(manifest.databases[0]?.properties).toMatchObject({ owner: role.owner, encoding: 'UTF8' });
      expect(manifest.databases[0]?.databaseProperties).toMatchObject({
        owner: role.owner,
        connectionLimit: 25,
      });
      const target = `${P}_member`;
      const restored = await cli([
        ...pgArgs(),
        '--backup-dir',
        clusterDir,
        'restore',
        'single',
        '--from-cluster',
        cluster,
        '--database',
        source,
        '--target',
        target,
        '--create',
        '--confirm',
      ]);
      expectExit(restored, 0);
      expect(await dbState(target)).toEqual(original);
    } finally {
      await removeDir(clusterDir);
    }
  });

  /** A copy of the custom backup whose recorded properties `edit` changes (as another server would have them). */
  async function editedBackup(
    edit: (p: Record<string, unknown>) => void,
  ): Promise<{ dir: string; file: string }> {
    const copy = await copyBackup(backups.custom);
    const metaFile = `${copy.file}.meta.json`;
    const meta = JSON.parse(await readFile(metaFile, 'utf8')) as {
      databaseProperties: Record<string, unknown>;
    };
    edit(meta.databaseProperties);
    await writeFile(metaFile, JSON.stringify(meta));
    return copy;
  }

  it('a locale the target does not have: refused before anything changes, even with --clean', async () => {
    const copy = await editedBackup((p) => {
      p.collate = 'xx_NOWHERE.UTF-8';
    });
    const target = `${P}_nolocale`;
    try {
      await pgExec('postgres', `CREATE DATABASE ${I(target)} TEMPLATE template0`);
      await pgExec(target, 'CREATE TABLE keep_me (id int)');
      const r = await restore(copy.file, target, '--clean', '--confirm');
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`Database "${target}" cannot be created as it was backed up`);
      expect(r.stderr).toContain('LC_COLLATE xx_NOWHERE.UTF-8');
      expect(r.stderr).toMatch(/^hint: Nothing was changed\. Add --no-db-properties/m);
      // --clean did not drop it: the existing database and its table are still there.
      const kept = await pgQuery(target, `SELECT to_regclass('keep_me') IS NOT NULL AS kept`);
      expect(kept).toEqual([{ kept: true }]);
    } finally {
      await removeDir(copy.dir);
    }
  });

  it('a tablespace the target does not have: a warning, and the database goes to the default tablespace', async () => {
    const copy = await editedBackup((p) => {
      p.tablespace = `${P}_no_such_ts`;
    });
    const target = `${P}_nots`;
    try {
      const r = await restore(copy.file, target, '--create', '--confirm');
      expectExit(r, 0);
      expect(r.stderr).toContain(`tablespace "${P}_no_such_ts" does not exist on`);
      expect(await dbState(target)).toEqual({ ...original, tablespace: 'pg_default' });
    } finally {
      await removeDir(copy.dir);
    }
  });

  it('a property the server rejects: exit 1 naming it, and the restored database is kept (its data is complete)', async () => {
    const copy = await editedBackup((p) => {
      (p.settings as unknown[]).push({ role: null, name: 'work_mem', value: 'lots' });
    });
    const target = `${P}_badsetting`;
    try {
      const r = await restore(copy.file, target, '--create', '--confirm');
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`"${target}" was restored, but 1 of its`);
      expect(r.stderr).toContain('setting work_mem=lots');
      expect(r.stderr).toMatch(/^hint: The data is complete and the database was kept/m);
      const state = await dbState(target);
      // Everything else was applied, the comment (after the failed setting) included.
      expect(state).toEqual(original);
    } finally {
      await removeDir(copy.dir);
    }
  });

  it('an encrypted backup keeps custom (possibly secret) settings out of its clear-text metadata, and says so', async () => {
    const encDir = await tempDir('dbb-pg-dbprops-enc-');
    const keyFile = path.join(encDir, 'backup.key');
    const secret = 'jwt-Secret-4711';
    try {
      expectExit(await cli(['keygen', '--symmetric', '--output', keyFile]), 0);
      await pgExec('postgres', `ALTER DATABASE ${I(source)} SET "app.jwt_secret" = '${secret}'`);
      const r = await cli([
        ...pgArgs(),
        '--backup-dir',
        encDir,
        'backup',
        'single',
        source,
        '--encryption-key-file',
        keyFile,
      ]);
      expectExit(r, 0);
      expect(r.stderr).toContain(
        'database settings app.jwt_secret are not recorded in the metadata of an encrypted backup',
      );
      const file = (await readdir(encDir)).find((f) => f.endsWith('.meta.json')) ?? '';
      const meta = await readFile(path.join(encDir, file), 'utf8');
      expect(meta).not.toContain(secret);
      expect(meta).toContain('search_path');
      const target = `${P}_encrypted`;
      const restored = await restore(
        path.join(encDir, file.replace(/\.meta\.json$/, '')),
        target,
        '--create',
        '--confirm',
        '--encryption-key-file',
        keyFile,
      );
      expectExit(restored, 0);
      expect(restored.stderr).toContain(
        'leave: settings app.jwt_secret (not recorded: the backup is encrypted)',
      );
      expect(await dbState(target)).toEqual(original);
    } finally {
      await pgExec('postgres', `ALTER DATABASE ${I(source)} RESET "app.jwt_secret"`);
      await removeDir(encDir);
    }
  });

  // Last: drops a role the other cases need.
  it('a role missing on the target: a warning names each property not applied; everything else is', async () => {
    await pgExec(source, `DROP OWNED BY ${I(role.gone)}`);
    await pgExec(
      'postgres',
      `REVOKE ALL ON DATABASE ${I(source)} FROM ${I(role.gone)}; DROP ROLE ${I(role.gone)}`,
    );
    const target = `${P}_norole`;
    const r = await restore(backups.custom, target, '--create', '--confirm');
    expectExit(r, 0);
    expect(r.stderr).toContain(
      `role "${role.gone}" does not exist on ${pgArgs()[1]}:${pgArgs()[3]}: database property "grant CONNECT, TEMPORARY to ${role.gone}" will not be applied`,
    );
    expect(r.stderr).toContain(
      `database property "setting work_mem=16MB for role ${role.gone}" will not be applied`,
    );
    expect(await dbState(target)).toEqual(without(original, role.gone));
  });
});
