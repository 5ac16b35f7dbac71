import { pgQuery } from './pg.js';

/** What a DBA checks about a role after a cluster restore. */
export interface PgRoleRow {
  rolname: string;
  rolcanlogin: boolean;
  rolcreatedb: boolean;
  rolconnlimit: number;
  has_password: boolean;
  /** The SCRAM/MD5 hash: equal after a restore means the same password works. */
  rolpassword: string | null;
  rolconfig: string[] | null;
  member_of: string[];
}

/** What a DBA checks about a database after a cluster restore. */
export interface PgDatabaseRow {
  datname: string;
  owner: string;
  encoding: string;
  datcollate: string;
  datctype: string;
  datconnlimit: number;
  acl: string[] | null;
  settings: string[] | null;
}

/** Roles whose name starts with `prefix`: attributes, password hash, memberships, settings. */
export async function pgRoles(prefix: string): Promise<PgRoleRow[]> {
  return pgQuery<PgRoleRow & Record<string, unknown>>(
    'postgres',
    `SELECT r.rolname, r.rolcanlogin, r.rolcreatedb, r.rolconnlimit,
            a.rolpassword IS NOT NULL AS has_password, a.rolpassword, r.rolconfig,
            coalesce((SELECT array_agg(g.rolname || CASE WHEN m.admin_option THEN ' WITH ADMIN' ELSE '' END
                                       || ' GRANTED BY ' || pg_get_userbyid(m.grantor) ORDER BY g.rolname)
                        FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                       WHERE m.member = r.oid), '{}') AS member_of
       FROM pg_roles r JOIN pg_authid a ON a.oid = r.oid
      WHERE left(r.rolname, length($1)) = $1 ORDER BY r.rolname`,
    [prefix],
  );
}

/** Databases whose name starts with `prefix`: owner, encoding, locale, ACL and settings. */
export async function pgDatabases(prefix: string): Promise<PgDatabaseRow[]> {
  return pgQuery<PgDatabaseRow & Record<string, unknown>>(
    'postgres',
    `SELECT d.datname, pg_get_userbyid(d.datdba) AS owner, pg_encoding_to_char(d.encoding) AS encoding,
            d.datcollate, d.datctype, d.datconnlimit,
            (SELECT array_agg(a::text ORDER BY a::text) FROM unnest(d.datacl) a) AS acl,
            (SELECT array_agg(x ORDER BY x)
               FROM (SELECT coalesce(pg_get_userbyid(nullif(s.setrole, 0)), '(all roles)') || ': '
                            || array_to_string(s.setconfig, ',') AS x
                       FROM pg_db_role_setting s WHERE s.setdatabase = d.oid) y) AS settings
       FROM pg_database d WHERE left(d.datname, length($1)) = $1 ORDER BY d.datname`,
    [prefix],
  );
}
