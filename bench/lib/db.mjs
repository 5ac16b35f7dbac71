// Connections to the PostgreSQL and MariaDB/MySQL servers under test: probing, queries, the
// arguments each tool needs, and which local processes are the server (for server CPU accounting).
import fs from 'node:fs';
import { sh, trySh, which } from './util.mjs';

const LOCAL = new Set(['127.0.0.1', 'localhost', '::1']);

/** The tool's own error lines from an sh() failure, on one line. */
function firstError(e) {
  const lines = String(e.message)
    .split('\n')
    .slice(1)
    .map((l) => l.trim())
    .filter(Boolean);
  return lines.join(' ').replace(/^(psql|mariadb|mysql): (error: )?/, '') || String(e.message);
}

// ---------------------------------------------------------------- PostgreSQL
export function pgEnv(pg) {
  return {
    ...process.env,
    PGHOST: pg.host,
    PGPORT: String(pg.port),
    PGUSER: pg.user,
    PGCONNECT_TIMEOUT: '5',
    PGAPPNAME: 'dbbackup-bench',
  };
}

/** Try the configured host, else the local socket then 127.0.0.1. Returns a connection or an error text. */
export function probePg(cfg) {
  if (!which('psql')) return { error: 'psql is not installed (apt-get install postgresql-client)' };
  const candidates = cfg.host
    ? [cfg.host]
    : [
        ...['/var/run/postgresql', '/tmp'].filter((d) => fs.existsSync(`${d}/.s.PGSQL.${cfg.port}`)),
        '127.0.0.1',
      ];
  const errors = [];
  for (const host of candidates) {
    const pg = { host, port: cfg.port, user: cfg.user };
    try {
      const v = sh('psql', ['-XAtq', '-d', 'postgres', '-c', 'show server_version'], {
        env: pgEnv(pg),
        timeoutMs: 15_000,
      });
      pg.version = v;
      pg.versionString = sh('psql', ['-XAtq', '-d', 'postgres', '-c', 'select version()'], {
        env: pgEnv(pg),
      });
      pg.superuser =
        sh(
          'psql',
          ['-XAtq', '-d', 'postgres', '-c', 'select rolsuper from pg_roles where rolname = current_user'],
          { env: pgEnv(pg) },
        ) === 't';
      pg.serverPids = pgServerPids(pg);
      return pg;
    } catch (e) {
      errors.push(`${host}:${cfg.port} as ${cfg.user}: ${firstError(e)}`);
    }
  }
  return { error: errors.join('\n    ') };
}

function pgServerPids(pg) {
  if (!(pg.host.startsWith('/') || LOCAL.has(pg.host))) return [];
  const ck = trySh(
    'psql',
    ['-XAtq', '-d', 'postgres', '-c', "select pid from pg_stat_activity where backend_type = 'checkpointer'"],
    { env: pgEnv(pg) },
  );
  if (!ck || !/^\d+$/.test(ck)) return [];
  try {
    const stat = fs.readFileSync(`/proc/${ck}/stat`, 'utf8');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    return ppid > 1 ? [{ pid: ppid, reaps: true }] : [];
  } catch {
    return [];
  }
}

export function psql(pg, db, sql, opts = {}) {
  return sh(
    'psql',
    ['-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', db, ...(sql === null ? ['-f', '-'] : ['-c', sql])],
    {
      env: pgEnv(pg),
      ...opts,
    },
  );
}

export function pgDbExists(pg, db) {
  return psql(pg, 'postgres', `select 1 from pg_database where datname = '${db}'`) === '1';
}

export function pgRecreate(pg, db) {
  psql(pg, 'postgres', `DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
  psql(pg, 'postgres', `CREATE DATABASE "${db}"`);
}

export function pgDrop(pg, db) {
  psql(pg, 'postgres', `DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
}

/**
 * What a restore must reproduce, as one line of \`name=value\` words: the row count of every table (partitions
 * and their parent included) and materialized view outside the system schemas, and how many schemas, types,
 * routines, views, triggers, indexes, constraints, sequences and comments there are.
 */
export function pgFingerprint(pg, db) {
  const user = (col) => `${col} not in ('pg_catalog', 'information_schema') and ${col} !~ '^pg_(toast|temp)'`;
  return psql(
    pg,
    db,
    `with rels as (
  select schemaname as s, tablename as t from pg_tables where ${user('schemaname')}
  union all select schemaname, matviewname from pg_matviews where ${user('schemaname')}
), ns as (select oid from pg_namespace where ${user('nspname')})
select concat_ws(' ',
  (select string_agg(format('%s.%s=%s', s, t,
     (xpath('/row/c/text()', query_to_xml(format('select count(*) as c from %I.%I', s, t), false, true, '')))[1]),
     ' ' order by s, t) from rels),
  'schemas=' || (select count(*) from ns),
  'types=' || (select count(*) from pg_type where typnamespace in (select oid from ns) and typtype in ('e', 'd', 'c') and typrelid = 0),
  'routines=' || (select count(*) from pg_proc where pronamespace in (select oid from ns)),
  'views=' || (select count(*) from pg_views where ${user('schemaname')}),
  'triggers=' || (select count(*) from pg_trigger t join pg_class k on k.oid = t.tgrelid where not t.tgisinternal and k.relnamespace in (select oid from ns)),
  'indexes=' || (select count(*) from pg_indexes where ${user('schemaname')}),
  'constraints=' || (select count(*) from pg_constraint where connamespace in (select oid from ns)),
  'sequences=' || (select count(*) from pg_sequences where ${user('schemaname')}),
  'comments=' || (select count(*) from pg_description d where d.objoid >= 16384 and d.classoid <> 'pg_database'::regclass))`,
  );
}

export function pgDbSize(pg, db) {
  return Number(psql(pg, 'postgres', `select pg_database_size('${db}')`));
}

// ---------------------------------------------------------------- MariaDB / MySQL
export function myClientArgs(my) {
  const a = [];
  if (my.host.startsWith('/')) a.push(`--socket=${my.host}`);
  else if (my.host === 'localhost') a.push('--host=localhost');
  else a.push('--protocol=TCP', `--host=${my.host}`, `--port=${my.port}`);
  a.push(`--user=${my.user}`);
  return a;
}

/** The dbbackup global options that reach the same server (plus env for a socket path). */
export function myDbbackupArgs(my) {
  if (my.host.startsWith('/'))
    return { args: ['--host', 'localhost', '--user', my.user], env: { MYSQL_UNIX_PORT: my.host } };
  return { args: ['--host', my.host, '--port', String(my.port), '--user', my.user], env: {} };
}

export function probeMy(cfg) {
  const client = which('mariadb') ? 'mariadb' : which('mysql') ? 'mysql' : null;
  const dump = which('mysqldump') ? 'mysqldump' : which('mariadb-dump') ? 'mariadb-dump' : null;
  if (!client || !dump)
    return { error: 'the MariaDB/MySQL client programs are not installed (apt-get install mariadb-client)' };
  const my = { ...cfg, client, dump };
  try {
    my.version = sh(
      client,
      [...myClientArgs(my), '--connect-timeout=5', '-N', '-B', '-e', 'select version()'],
      { timeoutMs: 15_000 },
    );
  } catch (e) {
    return {
      error: `${cfg.host}${cfg.host.startsWith('/') || cfg.host === 'localhost' ? '' : ':' + cfg.port} as ${cfg.user}: ${firstError(e)}`,
    };
  }
  my.serverPids = [];
  if (cfg.host.startsWith('/') || LOCAL.has(cfg.host)) {
    const pidFile = trySh(client, [...myClientArgs(my), '-N', '-B', '-e', 'select @@pid_file']);
    try {
      const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
      if (pid > 1 && fs.existsSync(`/proc/${pid}`)) my.serverPids = [{ pid, reaps: false }];
    } catch {
      /* not readable: no server CPU column */
    }
  }
  return my;
}

export function mysql(my, sql, { db, input } = {}) {
  const args = [...myClientArgs(my), '-N', '-B'];
  if (sql !== null) args.push('-e', sql);
  if (db) args.push(db);
  return sh(my.client, args, { input });
}

export function myRecreate(my, db) {
  mysql(my, `DROP DATABASE IF EXISTS \`${db}\`; CREATE DATABASE \`${db}\` CHARACTER SET utf8mb4`);
}

export function myDrop(my, db) {
  mysql(my, `DROP DATABASE IF EXISTS \`${db}\``);
}

export function myDbSize(my, db) {
  return Number(
    mysql(
      my,
      `select coalesce(sum(data_length + index_length), 0) from information_schema.tables where table_schema = '${db}'`,
    ),
  );
}
