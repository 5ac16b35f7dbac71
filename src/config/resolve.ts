import type { Engine } from '../types.js';
import { UsageError } from '../errors.js';
import { coerce, type ConfigEntry, type ConfigFile, type SettingValue } from './file.js';
import type { ReferenceConfig } from '../reference/config.js';
import { ENGINE_ALIASES, envVarsFor, SETTINGS, type EnvVar, type Setting } from './settings.js';
import { splitCommand } from './words.js';

/**
 * Which value each setting takes, and from where: flag > environment > profile > top level of the
 * file > the reference tool's ./.dbbackup.conf > default. Pure: the caller gathers the layers.
 */

export type Source =
  | { tier: 'flag'; flag: string }
  | { tier: 'env'; name: string; native: boolean }
  | { tier: 'profile'; profile: string; file: string; line?: number }
  | { tier: 'file'; file: string; line?: number }
  | { tier: 'reference'; file: string; line?: number }
  | { tier: 'default' };

export interface Resolved {
  setting: Setting;
  /** Undefined for a default, or for a native environment variable's raw text see `envText`. */
  value: SettingValue | undefined;
  source: Source;
}

export interface Layers {
  /** Settings given on the command line (their raw option values). */
  flags: ReadonlyMap<string, unknown>;
  env: NodeJS.ProcessEnv;
  config?: ConfigFile;
  /** The profile in use, if any (already checked to exist). */
  profile?: string;
  reference?: ReferenceConfig;
}

const RANK: Record<Source['tier'], number> = {
  flag: 5,
  env: 4,
  profile: 3,
  file: 2,
  reference: 1,
  default: 0,
};

/** The first environment variable of the setting that is set (non-empty), for this engine. */
export function envSource(setting: Setting, engine: Engine, env: NodeJS.ProcessEnv): EnvVar | undefined {
  return envVarsFor(setting, engine).find((e) => env[e.name] !== undefined && env[e.name] !== '');
}

/** A value from one of our own environment variables, checked like the file's values. */
export function envValue(setting: Setting, variable: string, text: string): SettingValue {
  let raw: unknown = text;
  if (setting.type.kind === 'integer') raw = /^[0-9]+$/.test(text) ? Number(text) : text;
  else if (setting.type.kind === 'strings') raw = text.split(/\s+/).filter(Boolean);
  else if (setting.type.kind === 'argv') raw = splitCommand(text, variable);
  const value = coerce(setting, raw);
  if (value === undefined)
    throw new UsageError(
      `Invalid ${variable}: "${text}"`,
      `${variable} stands for ${setting.flag}: ${setting.description}.`,
    );
  return value;
}

function configCandidates(setting: Setting, layers: Layers): Array<{ entry: ConfigEntry; source: Source }> {
  const found: Array<{ entry: ConfigEntry; source: Source }> = [];
  const { config, profile, reference } = layers;
  const fromProfile = profile ? config?.profiles.get(profile)?.get(setting.key) : undefined;
  if (config && profile && fromProfile)
    found.push({
      entry: fromProfile,
      source: { tier: 'profile', profile, file: config.path, line: fromProfile.line },
    });
  const fromBase = config?.base.get(setting.key);
  if (config && fromBase)
    found.push({ entry: fromBase, source: { tier: 'file', file: config.path, line: fromBase.line } });
  const fromReference = reference?.values.get(setting.key);
  if (reference && fromReference)
    found.push({
      entry: fromReference,
      source: { tier: 'reference', file: reference.path, line: fromReference.line },
    });
  return found;
}

/** The engine, resolved first: which environment variables count depends on it. */
export function resolveEngine(layers: Layers): Engine {
  const setting = SETTINGS.find((s) => s.key === 'connection.engine');
  const flag = layers.flags.get('connection.engine');
  const name =
    (typeof flag === 'string' ? flag : undefined) ??
    (layers.env.DBBACKUP_DB_TYPE || undefined) ??
    (setting ? configCandidates(setting, layers)[0]?.entry.value : undefined);
  return (typeof name === 'string' ? ENGINE_ALIASES[name.toLowerCase()] : undefined) ?? 'postgres';
}

function topTier(setting: Setting, layers: Layers, engine: Engine): number {
  if (layers.flags.has(setting.key)) return RANK.flag;
  if (envSource(setting, engine, layers.env)) return RANK.env;
  const config = configCandidates(setting, layers)[0];
  return config ? RANK[config.source.tier] : RANK.default;
}

export function resolveSettings(layers: Layers): Map<string, Resolved> {
  const engine = resolveEngine(layers);
  // A group takes its values from one tier only: the highest any of its members is set at.
  const groupTier = new Map<string, number>();
  for (const s of SETTINGS) {
    if (s.group) groupTier.set(s.group, Math.max(groupTier.get(s.group) ?? 0, topTier(s, layers, engine)));
  }
  const resolved = new Map<string, Resolved>();
  for (const setting of SETTINGS) {
    resolved.set(
      setting.key,
      resolveOne(setting, layers, engine, setting.group ? groupTier.get(setting.group) : undefined),
    );
  }
  return resolved;
}

function resolveOne(
  setting: Setting,
  layers: Layers,
  engine: Engine,
  groupTier: number | undefined,
): Resolved {
  if (layers.flags.has(setting.key)) {
    const flag = layers.flags.get(setting.key);
    const value =
      typeof flag === 'string' || typeof flag === 'number' || Array.isArray(flag)
        ? (flag as SettingValue)
        : undefined;
    return { setting, value, source: { tier: 'flag', flag: setting.flag } };
  }
  const env = envSource(setting, engine, layers.env);
  if (env) {
    const text = layers.env[env.name] ?? '';
    // Native variables are read where they are used; their text is shown as it is.
    const value = env.native ? text : envValue(setting, env.name, text);
    return { setting, value, source: { tier: 'env', name: env.name, native: Boolean(env.native) } };
  }
  const candidate = configCandidates(setting, layers)[0];
  if (candidate && (groupTier === undefined || RANK[candidate.source.tier] >= groupTier))
    return { setting, value: candidate.entry.value, source: candidate.source };
  return { setting, value: undefined, source: { tier: 'default' } };
}

/** Where a value came from, in words: `flag --host`, `env PGHOST`, `profile prod (file:12)`… */
export function describeSource(source: Source): string {
  const at = (file: string, line?: number): string => `${file}${line ? `:${line}` : ''}`;
  switch (source.tier) {
    case 'flag':
      return `flag ${source.flag}`;
    case 'env':
      return `env ${source.name}`;
    case 'profile':
      return `profile ${source.profile} (${at(source.file, source.line)})`;
    case 'file':
      return `top level (${at(source.file, source.line)})`;
    case 'reference':
      return `reference config (${at(source.file, source.line)})`;
    case 'default':
      return 'default';
  }
}
