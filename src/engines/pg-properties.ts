import pg from 'pg';
import type {
  CreationProperties,
  DatabaseGrant,
  DatabaseProperties,
  DatabaseSetting,
} from '../catalog/properties.js';
import { errnoCode, errorMessage, IntegrityError } from '../errors.js';
import type { PropertyStatement } from './engine.js';

/**
 * A PostgreSQL database's properties in one query. to_jsonb(d) keeps it working across versions
 * whose pg_database columns differ (datlocprovider from 15, daticulocale in 15-16, datlocale from
 * 17, daticurules from 16): a column a server does not have is simply absent.
 */
export const PG_PROPERTIES_QUERY = `
SELECT to_jsonb(d) AS d,
       pg_get_userbyid(d.datdba) AS owner,
       pg_encoding_to_char(d.encoding) AS encoding,
       (SELECT t.spcname FROM pg_catalog.pg_tablespace t WHERE t.oid = d.dattablespace) AS tablespace,
       pg_catalog.shobj_description(d.oid, 'pg_database') AS comment,
       CASE WHEN d.datacl IS NULL THEN NULL ELSE coalesce(
         (SELECT json_agg(json_build_object(
                   'grantee', CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END,
                   'grantor', pg_get_userbyid(a.grantor),
                   'privilege', a.privilege_type,
                   'grantable', a.is_grantable) ORDER BY a.grantee, a.privilege_type)
            FROM aclexplode(d.datacl) a), '[]'::json) END AS acl,
       coalesce(
         (SELECT json_agg(json_build_object(
                   'role', CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END,
                   'config', s.setconfig) ORDER BY s.setrole <> 0, pg_get_userbyid(s.setrole))
            FROM pg_catalog.pg_db_role_setting s WHERE s.setdatabase = d.oid), '[]'::json) AS settings
  FROM pg_catalog.pg_database d WHERE d.datname = $1`;

export interface PgPropertiesRow {
  d: Record<string, unknown>;
  owner: string;
  encoding: string;
  tablespace: string | null;
  comment: string | null;
  acl: DatabaseGrant[] | null;
  settings: Array<{ role: string | null; config: string[] | null }>;
}

const PROVIDERS: Record<string, string> = { c: 'libc', i: 'icu', b: 'builtin' };

export function pgPropertiesFromRow(row: PgPropertiesRow): DatabaseProperties {
  const d = row.d;
  const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
  const provider = str(d.datlocprovider);
  const p: DatabaseProperties = {
    owner: row.owner,
    encoding: row.encoding,
    collate: str(d.datcollate) ?? undefined,
    ctype: str(d.datctype) ?? undefined,
    connectionLimit: typeof d.datconnlimit === 'number' ? d.datconnlimit : undefined,
    comment: row.comment,
    // The default tablespace is where CREATE DATABASE puts a database anyway.
    tablespace: row.tablespace && row.tablespace !== 'pg_default' ? row.tablespace : undefined,
    acl: row.acl,
    settings: row.settings.flatMap((s) => (s.config ?? []).map((c) => splitSetting(s.role, c))),
  };
  if (provider) {
    p.localeProvider = PROVIDERS[provider] ?? provider;
    p.locale = str(d.datlocale) ?? str(d.daticulocale);
  }
  if ('daticurules' in d) p.icuRules = str(d.daticurules);
  return p;
}

/** `work_mem=8MB` → name and value (pg_db_role_setting stores `name=value`; a value may hold `=`). */
function splitSetting(role: string | null, config: string): DatabaseSetting {
  const eq = config.indexOf('=');
  return eq < 0
    ? { role, name: config, value: '' }
    : { role, name: config.slice(0, eq), value: config.slice(eq + 1) };
}

const lit = (v: string): string => pg.escapeLiteral(v);
const ident = (v: string): string => pg.escapeIdentifier(v);

/** CREATE DATABASE for a restore: always from template0 (empty), with the recorded properties given. */
export function pgCreateDatabaseSql(name: string, p: CreationProperties = {}): string {
  const parts = [`CREATE DATABASE ${ident(name)} TEMPLATE template0`];
  if (p.encoding) parts.push(`ENCODING ${lit(p.encoding)}`);
  if (p.collate) parts.push(`LC_COLLATE ${lit(p.collate)}`);
  if (p.ctype) parts.push(`LC_CTYPE ${lit(p.ctype)}`);
  if (p.localeProvider) {
    const provider = p.localeProvider.toLowerCase();
    if (!['libc', 'icu', 'builtin'].includes(provider))
      throw new IntegrityError(`Unknown locale provider "${p.localeProvider}" in the recorded properties`);
    parts.push(`LOCALE_PROVIDER ${provider}`);
    if (p.locale && provider === 'icu') parts.push(`ICU_LOCALE ${lit(p.locale)}`);
    if (p.locale && provider === 'builtin') parts.push(`BUILTIN_LOCALE ${lit(p.locale)}`);
  }
  if (p.icuRules) parts.push(`ICU_RULES ${lit(p.icuRules)}`);
  if (p.tablespace) parts.push(`TABLESPACE ${ident(p.tablespace)}`);
  return parts.join(' ');
}

/** Privileges a database grants by default (acldefault('d', owner)): PUBLIC may connect and use temp. */
const DEFAULT_PUBLIC = ['CONNECT', 'TEMPORARY'];
const DEFAULT_OWNER = ['CONNECT', 'CREATE', 'TEMPORARY'];
const KNOWN_PRIVILEGES = new Set(['CONNECT', 'CREATE', 'TEMPORARY']);

/**
 * Owner, privileges, connection limit, settings and comment as statements, in that order (the
 * owner first: privileges are granted in its name). Privileges are applied as pg_dump does, as the
 * difference from a new database's defaults, so that `REVOKE CONNECT … FROM PUBLIC` comes back.
 */
export function pgPropertyStatements(name: string, p: DatabaseProperties): PropertyStatement[] {
  const db = ident(name);
  const out: PropertyStatement[] = [];
  if (p.owner)
    out.push({
      label: `owner ${p.owner}`,
      roles: [p.owner],
      sql: `ALTER DATABASE ${db} OWNER TO ${ident(p.owner)}`,
    });
  if (p.acl) out.push(...aclStatements(db, p.acl, p.owner));
  if (p.connectionLimit !== undefined && p.connectionLimit !== -1)
    out.push({
      label: `connection limit ${p.connectionLimit}`,
      roles: [],
      sql: `ALTER DATABASE ${db} CONNECTION LIMIT ${Math.trunc(p.connectionLimit)}`,
    });
  for (const s of p.settings ?? []) {
    const set = `SET ${ident(s.name)} TO ${settingValueSql(s.name, s.value)}`;
    out.push(
      s.role === null
        ? { label: `setting ${s.name}=${s.value}`, roles: [], sql: `ALTER DATABASE ${db} ${set}` }
        : {
            label: `setting ${s.name}=${s.value} for role ${s.role}`,
            roles: [s.role],
            sql: `ALTER ROLE ${ident(s.role)} IN DATABASE ${db} ${set}`,
          },
    );
  }
  if (p.comment)
    out.push({
      label: `comment ${JSON.stringify(p.comment)}`,
      roles: [],
      sql: `COMMENT ON DATABASE ${db} IS ${lit(p.comment)}`,
    });
  return out;
}

function aclStatements(db: string, acl: DatabaseGrant[], owner: string | undefined): PropertyStatement[] {
  for (const g of acl)
    if (!KNOWN_PRIVILEGES.has(g.privilege))
      throw new IntegrityError(`Unknown database privilege "${g.privilege}" in the recorded properties`);
  const grantees = [...new Set(acl.map((g) => g.grantee))];
  // PUBLIC and the owner first: their defaults are what a REVOKE takes away.
  const order = (g: string | null): number => (g === null ? 0 : g === owner ? 1 : 2);
  grantees.sort((a, b) => order(a) - order(b) || String(a).localeCompare(String(b)));
  if (!grantees.includes(null)) grantees.unshift(null);
  if (owner !== undefined && !grantees.includes(owner)) grantees.splice(1, 0, owner);
  const out: PropertyStatement[] = [];
  for (const grantee of grantees) {
    const mine = acl.filter((g) => g.grantee === grantee);
    const held = mine.map((g) => g.privilege);
    const defaults = grantee === null ? DEFAULT_PUBLIC : grantee === owner ? DEFAULT_OWNER : [];
    const who = grantee === null ? 'PUBLIC' : ident(grantee);
    const shown = grantee ?? 'PUBLIC';
    const roles = grantee === null ? [] : [grantee];
    const revoke = defaults.filter((p) => !held.includes(p));
    if (revoke.length)
      out.push({
        label: `revoke ${revoke.join(', ')} from ${shown}`,
        roles,
        sql: `REVOKE ${revoke.join(', ')} ON DATABASE ${db} FROM ${who}`,
      });
    const plain = mine.filter((g) => !g.grantable && !defaults.includes(g.privilege)).map((g) => g.privilege);
    if (plain.length)
      out.push({
        label: `grant ${plain.join(', ')} to ${shown}`,
        roles,
        sql: `GRANT ${plain.join(', ')} ON DATABASE ${db} TO ${who}`,
      });
    // The owner's defaults carry the grant option implicitly; others get it only when recorded.
    const withOption = mine.filter((g) => g.grantable && grantee !== owner).map((g) => g.privilege);
    if (withOption.length)
      out.push({
        label: `grant ${withOption.join(', ')} to ${shown} with grant option`,
        roles,
        sql: `GRANT ${withOption.join(', ')} ON DATABASE ${db} TO ${who} WITH GRANT OPTION`,
      });
  }
  return out;
}

/**
 * The settings whose stored value is a list already quoted as identifiers (GUC_LIST_QUOTE in the
 * server): pg_dump's variable_is_guc_list_quote(). Their elements must be given one literal each,
 * or `search_path = 'app, public'` would become one schema named "app, public".
 */
const LIST_QUOTE = new Set([
  'local_preload_libraries',
  'search_path',
  'session_preload_libraries',
  'shared_preload_libraries',
  'temp_tablespaces',
  'unix_socket_directories',
]);

/** The value part of `SET name TO …` for a value as pg_db_role_setting stores it (pg_dump's makeAlterConfigCommand). */
export function settingValueSql(name: string, value: string): string {
  if (LIST_QUOTE.has(name.toLowerCase())) {
    const items = splitGucList(value);
    if (items) return items.length ? items.map(lit).join(', ') : "''";
  }
  return lit(value);
}

/**
 * PostgreSQL's SplitGUCList: the elements of a list setting, separated by commas, each bare (up to a
 * comma or space) or double-quoted (doubled quotes inside stand for one). undefined if malformed.
 */
export function splitGucList(raw: string): string[] | undefined {
  const items: string[] = [];
  const space = (c: string | undefined): boolean => c !== undefined && /[ \t\n\r\f\v]/.test(c);
  let i = 0;
  while (space(raw[i])) i++;
  if (i >= raw.length) return items;
  for (;;) {
    let item = '';
    if (raw[i] === '"') {
      i++;
      for (;;) {
        const end = raw.indexOf('"', i);
        if (end < 0) return undefined;
        item += raw.slice(i, end);
        i = end + 1;
        if (raw[i] !== '"') break;
        item += '"';
        i++;
      }
    } else {
      const start = i;
      while (i < raw.length && raw[i] !== ',' && !space(raw[i])) i++;
      if (i === start) return undefined;
      item = raw.slice(start, i);
    }
    items.push(item);
    while (space(raw[i])) i++;
    if (i >= raw.length) return items;
    if (raw[i] !== ',') return undefined;
    i++;
    while (space(raw[i])) i++;
  }
}

/**
 * Whether this server can create a database with these properties: the encoding is known, and the
 * locales are (probed with CREATE COLLATION in a transaction rolled back, leaving nothing).
 */
export async function pgCreationProblems(c: pg.Client, p: CreationProperties): Promise<string[]> {
  const problems: string[] = [];
  if (p.encoding) {
    const r = await c.query<{ n: number }>('SELECT pg_char_to_encoding($1) AS n', [p.encoding]);
    if ((r.rows[0]?.n ?? -1) < 0) problems.push(`encoding ${p.encoding} is unknown to this server`);
  }
  // CREATE COLLATION checks a locale the way CREATE DATABASE will; in a transaction rolled back,
  // in pg_temp, it leaves nothing. Only a verdict on the locale counts (not, say, a missing privilege).
  const probes: Array<[string, string]> = [];
  if (p.collate || p.ctype) {
    const collate = p.collate ?? p.ctype ?? '';
    const ctype = p.ctype ?? collate;
    probes.push([
      `LC_COLLATE ${collate}, LC_CTYPE ${ctype}`,
      `CREATE COLLATION pg_temp.dbbackup_probe (LC_COLLATE = ${pg.escapeLiteral(collate)}, LC_CTYPE = ${pg.escapeLiteral(ctype)})`,
    ]);
  }
  if (p.localeProvider === 'icu' && p.locale)
    probes.push([
      `ICU locale ${p.locale}`,
      `CREATE COLLATION pg_temp.dbbackup_probe_icu (provider = icu, locale = ${pg.escapeLiteral(p.locale)})`,
    ]);
  if (!probes.length) return problems;
  await c.query('BEGIN');
  try {
    for (const [what, sql] of probes) {
      await c.query('SAVEPOINT probe');
      try {
        await c.query(sql);
      } catch (err) {
        const code = errnoCode(err);
        // 22023: no such locale; 0A000: ICU not built in.
        if (code === '22023' || code === '0A000') problems.push(`${what}: ${errorMessage(err)}`);
      }
      await c.query('ROLLBACK TO SAVEPOINT probe');
    }
  } finally {
    await c.query('ROLLBACK').catch(() => undefined);
  }
  return problems;
}
