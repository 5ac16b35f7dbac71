import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { optionValue } from '../../src/cli/apply-config.js';
import type { SettingValue } from '../../src/config/file.js';
import { REFERENCE_KEYS } from '../../src/reference/config.js';
import { envValue, type Source } from '../../src/config/resolve.js';
import { SETTINGS, type EnvVar, type Setting } from '../../src/config/settings.js';
import { commandFor, OPERANDS, parseWith, put, writeConfig, type Doc } from './config-program.js';

/**
 * Precedence, for every setting: flag > environment > profile > top level of the file >
 * ./.dbbackup.conf > default, through the real program and the real configuration step. Each
 * tier is set together with every tier below it (with other values), and must win.
 */

type Tier = 'flag' | 'env' | 'profile' | 'file' | 'reference';
const TIERS: Tier[] = ['flag', 'env', 'profile', 'file', 'reference'];

/** A value of the setting's type for a tier; neighbouring tiers always differ. */
function valueFor(setting: Setting, tier: Tier): SettingValue {
  const i = TIERS.indexOf(tier);
  const t = setting.type;
  switch (t.kind) {
    case 'integer':
      return t.min + 1 + i;
    case 'enum':
      // Engines: keep the family of the default engine for env-var tests (see engineFor).
      return t.values[i % t.values.length] ?? '';
    case 'strings':
      return setting.key === 'notify.url'
        ? [`http://127.0.0.1:9/${tier}-hook`]
        : [`${tier}-one`, `${tier}-two`];
    case 'argv':
      return [`/bin/${tier}`, `--${tier}`];
    case 'string':
      return `/from/${tier}`;
  }
}

/** The reference tool's `[section] key` for a setting, if it has one. */
function referenceKey(setting: Setting): [string, string] | undefined {
  const entry = Object.entries(REFERENCE_KEYS).find(([, key]) => key === setting.key);
  return entry ? (entry[0].split('.') as [string, string]) : undefined;
}

function flagArgs(setting: Setting, value: SettingValue): string[] {
  if (setting.type.kind === 'strings') return (value as string[]).flatMap((v) => [setting.flag, v]);
  if (setting.type.kind === 'argv') return [setting.flag, (value as string[]).join(' ')];
  return [setting.flag, String(value)];
}

function envText(setting: Setting, value: SettingValue): string {
  return Array.isArray(value) ? value.join(' ') : String(value);
}

/** What the command's action sees when `tier` wins with `value`. */
function expected(setting: Setting, tier: Tier, value: SettingValue, env: EnvVar | undefined): unknown {
  if (tier === 'flag') {
    if (setting.type.kind === 'argv') return (value as string[]).join(' ');
    return Array.isArray(value) ? value : String(value);
  }
  if (tier === 'env') {
    // The code that uses a native variable reads it itself; the option stays unset.
    if (env?.native) return undefined;
    return optionValue(setting, envValue(setting, env?.name ?? '', envText(setting, value)));
  }
  return optionValue(setting, value);
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'dbbackup-precedence-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** An environment without the machine's own settings. */
function cleanEnv(): NodeJS.ProcessEnv {
  return { HOME: os.homedir(), PATH: process.env.PATH, XDG_CONFIG_HOME: path.join(dir, 'no-config') };
}

interface Case {
  setting: Setting;
  tier: Tier | 'default';
  env?: EnvVar;
}

function cases(): Case[] {
  const all: Case[] = [];
  for (const setting of SETTINGS) {
    all.push({ setting, tier: 'default' });
    for (const tier of TIERS) {
      if (tier === 'reference' && !referenceKey(setting)) continue;
      if (tier === 'env') for (const env of setting.env) all.push({ setting, tier, env });
      else all.push({ setting, tier });
    }
  }
  return all;
}

function label(c: Case): string {
  return `${c.setting.key}: ${c.tier}${c.env ? ` (${c.env.name})` : ''} wins`;
}

let counter = 0;

describe('precedence: flag > environment > profile > top level > .dbbackup.conf > default', () => {
  it.each(cases().map((c) => [label(c), c] as const))('%s', async (_name, c) => {
    const { setting } = c;
    const work = await mkdtemp(path.join(dir, `case-${counter++}-`));
    const winner = c.tier === 'default' ? -1 : TIERS.indexOf(c.tier);
    const below = (t: Tier): boolean => winner >= 0 && TIERS.indexOf(t) >= winner;
    const path_ = commandFor(setting.option, setting.scope);
    // The engine decides which variables count: an engine-specific variable gets its engine.
    const engine = c.env?.engines?.[0];
    const args: string[] = [];
    const env = cleanEnv();
    if (engine && setting.key !== 'connection.engine') args.push('--db-type', engine);
    const flags = below('flag') ? flagArgs(setting, valueFor(setting, 'flag')) : [];
    // A command's own option follows the command; a global one may go anywhere.
    if (setting.scope === 'global') args.push(...flags);
    if (below('env')) {
      const variable = c.env ?? setting.env[0];
      if (variable) env[variable.name] = envText(setting, valueFor(setting, 'env'));
    }
    const doc: Doc = {};
    if (below('profile')) {
      const profile: Doc = {};
      put(profile, setting.key, valueFor(setting, 'profile'));
      doc.profiles = { p: profile };
      doc.default_profile = 'p';
    }
    if (below('file')) put(doc, setting.key, valueFor(setting, 'file'));
    args.push('--config', await writeConfig(work, doc));
    const ref = referenceKey(setting);
    if (below('reference') && ref) {
      const v = valueFor(setting, 'reference');
      await writeFile(path.join(work, '.dbbackup.conf'), `[${ref[0]}]\n${ref[1]} = ${String(v)}\n`);
    }

    const command = [
      ...path_.split(' '),
      ...(OPERANDS[path_] ?? []),
      ...(setting.scope === 'command' ? flags : []),
    ];
    const parsed = await parseWith([...args, ...command], env, work);
    const resolved = parsed.applied.resolved.get(setting.key);
    const seen = parsed.options[setting.option];
    if (c.tier === 'default') {
      expect(resolved?.source.tier).toBe('default');
      expect(seen).toBeUndefined();
      return;
    }
    const source = resolved?.source as Source;
    expect(source.tier).toBe(c.tier);
    if (source.tier === 'env') expect(source.name).toBe((c.env ?? setting.env[0])?.name);
    expect(seen).toEqual(expected(setting, c.tier, valueFor(setting, c.tier), c.env ?? setting.env[0]));
  });

  it('every setting is tested at every tier it has, and every environment variable it names', () => {
    const keys = new Set(cases().map((c) => c.setting.key));
    expect([...keys].sort()).toEqual(SETTINGS.map((s) => s.key).sort());
    for (const s of SETTINGS) expect(s.env.length, `${s.key} has an environment variable`).toBeGreaterThan(0);
  });
});
