import { describe, expect, it } from 'vitest';
import { memberProperties, type ClusterMember } from '../../src/catalog/manifest.js';
import { parseMetadata } from '../../src/catalog/metadata.js';
import {
  creationProperties,
  propertySummary,
  recordableProperties,
  selectProperties,
  type DatabaseProperties,
} from '../../src/catalog/properties.js';
import {
  pgCreateDatabaseSql,
  pgPropertiesFromRow,
  pgPropertyStatements,
  settingValueSql,
  splitGucList,
} from '../../src/engines/pg-properties.js';
import { metadataFor } from './helpers.js';

/** A production-like PostgreSQL database: owner, PUBLIC's CONNECT revoked, a reader, settings, a comment. */
const shop: DatabaseProperties = {
  owner: 'app_owner',
  encoding: 'UTF8',
  collate: 'C',
  ctype: 'C.utf8',
  localeProvider: 'icu',
  locale: 'de',
  connectionLimit: 50,
  comment: "Shop's data",
  acl: [
    { grantee: null, grantor: 'app_owner', privilege: 'TEMPORARY', grantable: false },
    { grantee: 'app_owner', grantor: 'app_owner', privilege: 'CONNECT', grantable: false },
    { grantee: 'app_owner', grantor: 'app_owner', privilege: 'CREATE', grantable: false },
    { grantee: 'app_owner', grantor: 'app_owner', privilege: 'TEMPORARY', grantable: false },
    { grantee: 'app_reader', grantor: 'app_owner', privilege: 'CONNECT', grantable: false },
    { grantee: 'ops', grantor: 'app_owner', privilege: 'CREATE', grantable: true },
  ],
  settings: [
    { role: null, name: 'search_path', value: 'app, "My Schema", public' },
    { role: null, name: 'TimeZone', value: 'Europe/Paris' },
    { role: 'app_reader', name: 'statement_timeout', value: '5s' },
  ],
};

describe('PostgreSQL database properties → statements', () => {
  it('applies owner, privileges, connection limit, settings and comment in that order', () => {
    const statements = pgPropertyStatements('shop copy', shop);
    expect(statements.map((s) => s.sql)).toEqual([
      'ALTER DATABASE "shop copy" OWNER TO "app_owner"',
      'REVOKE CONNECT ON DATABASE "shop copy" FROM PUBLIC',
      'GRANT CONNECT ON DATABASE "shop copy" TO "app_reader"',
      'GRANT CREATE ON DATABASE "shop copy" TO "ops" WITH GRANT OPTION',
      'ALTER DATABASE "shop copy" CONNECTION LIMIT 50',
      `ALTER DATABASE "shop copy" SET "search_path" TO 'app', 'My Schema', 'public'`,
      `ALTER DATABASE "shop copy" SET "TimeZone" TO 'Europe/Paris'`,
      `ALTER ROLE "app_reader" IN DATABASE "shop copy" SET "statement_timeout" TO '5s'`,
      `COMMENT ON DATABASE "shop copy" IS 'Shop''s data'`,
    ]);
    expect(statements.map((s) => s.roles)).toEqual([
      ['app_owner'],
      [],
      ['app_reader'],
      ['ops'],
      [],
      [],
      [],
      ['app_reader'],
      [],
    ]);
    expect(statements[1]?.label).toBe('revoke CONNECT from PUBLIC');
    expect(statements[7]?.label).toBe('setting statement_timeout=5s for role app_reader');
  });

  it('takes everything from PUBLIC and the owner when the recorded privileges are empty', () => {
    const sql = pgPropertyStatements('d', { owner: 'o', acl: [] }).map((s) => s.sql);
    expect(sql).toEqual([
      'ALTER DATABASE "d" OWNER TO "o"',
      'REVOKE CONNECT, TEMPORARY ON DATABASE "d" FROM PUBLIC',
      'REVOKE CONNECT, CREATE, TEMPORARY ON DATABASE "d" FROM "o"',
    ]);
  });

  it('changes no privileges when the recorded ones are the defaults (null)', () => {
    expect(pgPropertyStatements('d', { owner: 'o', acl: null }).map((s) => s.sql)).toEqual([
      'ALTER DATABASE "d" OWNER TO "o"',
    ]);
  });

  it('refuses a privilege it does not know instead of writing it into SQL', () => {
    const acl = [{ grantee: 'x', grantor: 'o', privilege: 'CONNECT; DROP DATABASE y', grantable: false }];
    expect(() => pgPropertyStatements('d', { owner: 'o', acl })).toThrow(/Unknown database privilege/);
  });

  it('creates from template0 with the recorded encoding, locale, provider and tablespace', () => {
    expect(pgCreateDatabaseSql('d', creationProperties({ ...shop, tablespace: 'fast ssd' }))).toBe(
      `CREATE DATABASE "d" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C.utf8' LOCALE_PROVIDER icu ICU_LOCALE 'de' TABLESPACE "fast ssd"`,
    );
    expect(pgCreateDatabaseSql('d')).toBe('CREATE DATABASE "d" TEMPLATE template0');
    expect(() => pgCreateDatabaseSql('d', { localeProvider: 'icu; DROP' })).toThrow(
      /Unknown locale provider/,
    );
  });

  it('reads a pg_database row of any version (columns that differ are optional)', () => {
    const row = {
      d: { datcollate: 'C', datctype: 'C', datconnlimit: -1, datlocprovider: 'i', daticulocale: 'und' },
      owner: 'o',
      encoding: 'UTF8',
      tablespace: 'pg_default',
      comment: null,
      acl: null,
      settings: [{ role: null, config: ['work_mem=8MB', 'x.y=a=b'] }],
    };
    expect(pgPropertiesFromRow(row)).toEqual({
      owner: 'o',
      encoding: 'UTF8',
      collate: 'C',
      ctype: 'C',
      connectionLimit: -1,
      comment: null,
      tablespace: undefined,
      acl: null,
      localeProvider: 'icu',
      locale: 'und',
      settings: [
        { role: null, name: 'work_mem', value: '8MB' },
        { role: null, name: 'x.y', value: 'a=b' },
      ],
    });
    // PostgreSQL 14: no locale provider at all.
    const old = pgPropertiesFromRow({ ...row, d: { datcollate: 'C', datctype: 'C', datconnlimit: 3 } });
    expect(old.localeProvider).toBeUndefined();
    expect(old.connectionLimit).toBe(3);
  });
});

describe("PostgreSQL list settings (pg_dump's SplitGUCList)", () => {
  it('splits on commas, keeps quoted names whole and collapses doubled quotes', () => {
    expect(splitGucList('app, "My Schema", public')).toEqual(['app', 'My Schema', 'public']);
    expect(splitGucList('"a,b","say ""hi"""')).toEqual(['a,b', 'say "hi"']);
    expect(splitGucList('"$user", public')).toEqual(['$user', 'public']);
    expect(splitGucList('')).toEqual([]);
    expect(splitGucList('""')).toEqual(['']);
    expect(splitGucList('"open')).toBeUndefined();
    expect(splitGucList('a,,b')).toBeUndefined();
  });

  it('gives a list setting one literal per element, any other setting one literal', () => {
    expect(settingValueSql('search_path', '"$user", public')).toBe(`'$user', 'public'`);
    expect(settingValueSql('Search_Path', 'a')).toBe(`'a'`);
    expect(settingValueSql('search_path', '')).toBe(`''`);
    expect(settingValueSql('application_name', 'a, b')).toBe(`'a, b'`);
  });
});

describe('which recorded properties a restore applies', () => {
  it('--no-owner drops owner and privileges; --no-db-properties drops the rest', () => {
    expect(Object.keys(selectProperties(shop, { owner: false, other: true })).sort()).toEqual(
      [
        'collate',
        'comment',
        'connectionLimit',
        'ctype',
        'encoding',
        'locale',
        'localeProvider',
        'settings',
      ].sort(),
    );
    expect(Object.keys(selectProperties(shop, { owner: true, other: false })).sort()).toEqual([
      'acl',
      'owner',
    ]);
    expect(selectProperties(shop, { owner: false, other: false })).toEqual({});
  });

  it('keeps the one-string summary of cluster manifests (read by older versions)', () => {
    expect(propertySummary(shop)).toMatchObject({
      owner: 'app_owner',
      encoding: 'UTF8',
      settings: 'search_path=app, "My Schema", public,TimeZone=Europe/Paris',
      role_settings: 'app_reader: statement_timeout=5s',
      connection_limit: '50',
    });
    expect(propertySummary({ charset: 'utf8mb4', collation: 'utf8mb4_unicode_ci' })).toEqual({
      charset: 'utf8mb4',
      collation: 'utf8mb4_unicode_ci',
    });
  });
});

describe('what the clear-text metadata of a backup may hold', () => {
  const p: DatabaseProperties = {
    owner: 'o',
    settings: [
      { role: null, name: 'search_path', value: 'app' },
      { role: null, name: 'app.jwt_secret', value: 's3cret' },
      { role: 'r', name: 'app.jwt_secret', value: 'other' },
    ],
  };

  it('everything for a backup that is not encrypted', () => {
    expect(recordableProperties(p, false)).toEqual({ properties: p, warning: undefined });
  });

  it('no custom (dotted) setting of an encrypted backup, named in the warning and the record', () => {
    const { properties, warning } = recordableProperties(p, true);
    expect(JSON.stringify(properties)).not.toContain('s3cret');
    expect(properties.settings).toEqual([{ role: null, name: 'search_path', value: 'app' }]);
    expect(properties.withheldSettings).toEqual(['app.jwt_secret']);
    expect(warning).toMatch(/^database settings app\.jwt_secret are not recorded/);
  });
});

describe('recorded properties in old and new backups', () => {
  it('metadata of an older version (no databaseProperties) still loads; new metadata keeps them', () => {
    const old = metadataFor('shop.dump', Buffer.from('data'));
    expect(parseMetadata(JSON.stringify(old), 'old').databaseProperties).toBeUndefined();
    const now = parseMetadata(JSON.stringify({ ...old, databaseProperties: shop }), 'new');
    expect(now.databaseProperties).toEqual(shop);
  });

  it('a member of an older manifest gives what its summary can say, and names what it cannot', () => {
    const member = {
      properties: {
        owner: 'o',
        encoding: 'LATIN1',
        collate: 'C',
        ctype: 'C',
        acl: '{=T/o,o=CTc/o}',
        settings: 'work_mem=8MB',
      },
    } as unknown as ClusterMember;
    const { properties, unreadable } = memberProperties(member);
    expect(properties).toEqual({ owner: 'o', encoding: 'LATIN1', collate: 'C', ctype: 'C' });
    expect(unreadable).toEqual(['privileges ({=T/o,o=CTc/o})', 'settings (work_mem=8MB)']);
    expect(memberProperties({ ...member, databaseProperties: shop }).properties).toEqual(shop);
  });
});
