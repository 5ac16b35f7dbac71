import type { z } from 'zod';
import { lazySchemas } from '../zod.js';

/**
 * A database's own properties, as the server reported them at backup time: what a restore that
 * creates the database needs to make it the same database, not only the same contents. Every field
 * is optional: an engine records the ones it has, and older backups recorded fewer.
 */
export const propertySchemas = lazySchemas((z) => {
  /** One privilege of one grantee, as PostgreSQL's aclexplode() lists it. */
  const grant = z.object({
    /** null: PUBLIC. */
    grantee: z.string().nullable(),
    grantor: z.string(),
    /** CONNECT, CREATE or TEMPORARY. */
    privilege: z.string(),
    grantable: z.boolean(),
  });
  /** One `name=value` of pg_db_role_setting, for every role (role null) or for one role in this database. */
  const setting = z.object({
    role: z.string().nullable(),
    name: z.string(),
    value: z.string(),
  });
  const databaseProperties = z.object({
    // PostgreSQL
    owner: z.string().optional(),
    encoding: z.string().optional(),
    collate: z.string().optional(),
    ctype: z.string().optional(),
    /** libc, icu or builtin (PostgreSQL 15 and later). */
    localeProvider: z.string().optional(),
    /** The ICU (or builtin) locale, when the provider is not libc. */
    locale: z.string().nullable().optional(),
    icuRules: z.string().nullable().optional(),
    /** -1: no limit. */
    connectionLimit: z.number().int().optional(),
    comment: z.string().nullable().optional(),
    tablespace: z.string().optional(),
    /** null: the default privileges (PUBLIC may connect and create temporary tables). */
    acl: z.array(grant).nullable().optional(),
    settings: z.array(setting).optional(),
    /** Settings (names) an encrypted backup did not record, being possibly secret: see recordableProperties. */
    withheldSettings: z.array(z.string()).optional(),
    // MySQL / MariaDB
    charset: z.string().optional(),
    collation: z.string().optional(),
  });
  return { grant, setting, databaseProperties };
});
type Schemas = ReturnType<typeof propertySchemas>;

export type DatabaseProperties = z.infer<Schemas['databaseProperties']>;
export type DatabaseGrant = z.infer<Schemas['grant']>;
export type DatabaseSetting = z.infer<Schemas['setting']>;

/** Fields given to CREATE DATABASE; the others are applied once the data is in. */
const CREATION_FIELDS = [
  'encoding',
  'collate',
  'ctype',
  'localeProvider',
  'locale',
  'icuRules',
  'tablespace',
  'charset',
  'collation',
] as const satisfies ReadonlyArray<keyof DatabaseProperties>;

/** What --no-owner leaves out: who owns the database and who may use it. */
const OWNERSHIP_FIELDS = ['owner', 'acl'] as const satisfies ReadonlyArray<keyof DatabaseProperties>;

export type CreationProperties = Pick<DatabaseProperties, (typeof CREATION_FIELDS)[number]>;

export function creationProperties(p: DatabaseProperties): CreationProperties {
  const out: CreationProperties = {};
  for (const k of CREATION_FIELDS) if (p[k] !== undefined) Object.assign(out, { [k]: p[k] });
  return out;
}

/**
 * The part of `p` a restore applies: ownership and privileges unless `owner` is false (--no-owner),
 * everything else unless `other` is false (--no-db-properties).
 */
export function selectProperties(
  p: DatabaseProperties,
  o: { owner: boolean; other: boolean },
): DatabaseProperties {
  const out: DatabaseProperties = {};
  for (const [k, v] of Object.entries(p) as Array<[keyof DatabaseProperties, unknown]>) {
    const ownership = (OWNERSHIP_FIELDS as ReadonlyArray<string>).includes(k);
    if (v !== undefined && (ownership ? o.owner : o.other)) Object.assign(out, { [k]: v });
  }
  return out;
}

const LABELS: Record<keyof DatabaseProperties, string> = {
  owner: 'owner',
  encoding: 'encoding',
  collate: 'LC_COLLATE',
  ctype: 'LC_CTYPE',
  localeProvider: 'locale provider',
  locale: 'locale',
  icuRules: 'ICU rules',
  connectionLimit: 'connection limit',
  comment: 'comment',
  tablespace: 'tablespace',
  acl: 'privileges',
  settings: 'settings',
  withheldSettings: 'withheld settings',
  charset: 'character set',
  collation: 'collation',
};

/** "encoding, LC_COLLATE, settings": which properties `p` holds, for plans. */
export function propertyNames(p: DatabaseProperties): string[] {
  return (Object.keys(LABELS) as Array<keyof DatabaseProperties>)
    .filter((k) => p[k] !== undefined && p[k] !== null)
    .map((k) => LABELS[k]);
}

/** "encoding UTF8, LC_COLLATE C, …": the creation properties with their values, for plans. */
export function describeCreation(p: CreationProperties): string[] {
  return CREATION_FIELDS.flatMap((k) => {
    const v = p[k];
    return v === undefined || v === null ? [] : [`${LABELS[k]} ${v}`];
  });
}

/**
 * What a backup's metadata may hold in the clear: everything, but for an encrypted backup not its
 * custom settings (`app.jwt_secret`, `myext.api_key`: a dotted name), where applications keep
 * secrets that the encrypted dump protects. Those are named in `warning`; a restore cannot set them.
 */
export function recordableProperties(
  p: DatabaseProperties,
  encrypted: boolean,
): { properties: DatabaseProperties; warning: string | undefined } {
  const custom = (s: DatabaseSetting): boolean => s.name.includes('.');
  const withheld = encrypted ? [...new Set((p.settings ?? []).filter(custom).map((s) => s.name))] : [];
  if (!withheld.length) return { properties: p, warning: undefined };
  return {
    properties: { ...p, settings: p.settings?.filter((s) => !custom(s)), withheldSettings: withheld },
    warning: `database settings ${withheld.join(', ')} are not recorded in the metadata of an encrypted backup (it is readable without the key): a restore that creates the database does not set them`,
  };
}

/**
 * The flat record a cluster manifest has always carried as `properties` (shown to users; read by
 * older versions of dbbackup): one string per property.
 */
export function propertySummary(p: DatabaseProperties): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  const put = (key: string, v: string | number | null | undefined): void => {
    if (v !== undefined) out[key] = v === null ? null : String(v);
  };
  put('owner', p.owner);
  put('encoding', p.encoding);
  put('collate', p.collate);
  put('ctype', p.ctype);
  put('locale_provider', p.localeProvider);
  put('locale', p.locale);
  put('icu_rules', p.icuRules);
  put('connection_limit', p.connectionLimit);
  put('comment', p.comment);
  put('tablespace', p.tablespace);
  if (p.acl !== undefined) put('acl', p.acl === null ? null : describeAcl(p.acl));
  if (p.settings) {
    const forAll = p.settings.filter((s) => s.role === null);
    const perRole = p.settings.filter((s) => s.role !== null);
    put('settings', forAll.length ? forAll.map((s) => `${s.name}=${s.value}`).join(',') : null);
    if (perRole.length)
      put('role_settings', perRole.map((s) => `${s.role}: ${s.name}=${s.value}`).join('; '));
  }
  put('charset', p.charset);
  put('collation', p.collation);
  return out;
}

/** `PUBLIC: TEMPORARY; app_reader: CONNECT, TEMPORARY` */
function describeAcl(acl: DatabaseGrant[]): string {
  const by = new Map<string, string[]>();
  for (const g of acl) {
    const who = g.grantee ?? 'PUBLIC';
    by.set(who, [...(by.get(who) ?? []), `${g.privilege}${g.grantable ? ' WITH GRANT OPTION' : ''}`]);
  }
  return [...by].map(([who, privs]) => `${who}: ${privs.join(', ')}`).join('; ');
}

/**
 * Properties from a cluster manifest written before they were recorded in full: only the flat
 * summary exists. Owner, encoding, locale and character set can be read from it; its privileges and
 * settings (`unreadable`) cannot be read back reliably, so they are named instead of guessed.
 */
export function fromSummary(summary: Record<string, string | null>): {
  properties: DatabaseProperties;
  unreadable: string[];
} {
  const properties: DatabaseProperties = {};
  const text = (key: string): string | undefined => summary[key] ?? undefined;
  const fields = {
    owner: text('owner'),
    encoding: text('encoding'),
    collate: text('collate'),
    ctype: text('ctype'),
    charset: text('charset'),
    collation: text('collation'),
  };
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) Object.assign(properties, { [k]: v });
  const unreadable: string[] = [];
  if (summary.acl) unreadable.push(`privileges (${summary.acl})`);
  if (summary.settings) unreadable.push(`settings (${summary.settings})`);
  return { properties, unreadable };
}
