import type { Command, Option } from 'commander';
import type { Engine } from '../types.js';
import {
  configLocation,
  loadConfig,
  type ConfigLocation,
  type LoadedConfig,
  type SettingValue,
} from '../config/file.js';
import { loadReferenceConfig, type ReferenceConfig } from '../reference/config.js';
import { resolveEngine, resolveSettings, type Resolved } from '../config/resolve.js';
import { SETTINGS, type Setting } from '../config/settings.js';
import { UsageError } from '../errors.js';
import { commandPath, rootOf } from './context.js';

/**
 * The one place where configuration files and our own environment variables become option values:
 * before a command's action runs, every setting the command declares and the command line did not
 * give is filled in from (in order) its environment variable, the profile, the file's top level,
 * then ./.dbbackup.conf. Commands read their options as always and need not know where a value
 * came from. Variables the code reads itself (PGHOST, DBBACKUP_BACKUP_DIR…) only keep the files'
 * values out.
 */

export interface AppliedConfig {
  location: ConfigLocation;
  config?: LoadedConfig;
  reference?: ReferenceConfig;
  profile?: string;
  engine: Engine;
  resolved: Map<string, Resolved>;
}

interface RootOptions {
  config?: string | false;
  profile?: string;
  quiet?: boolean;
  verbose?: boolean;
}

/** The command that holds a setting's option for this run, if the option applies to it. */
function declaringCommand(setting: Setting, action: Command): { cmd: Command; option: Option } | undefined {
  if (setting.notFor?.includes(commandPath(action))) return undefined;
  const cmd = setting.scope === 'global' ? rootOf(action) : action;
  const option = cmd.options.find((o) => o.attributeName() === setting.option && !o.negate);
  // A hidden option is one the command refuses (backup's --identity-file): never filled in.
  if (!option || option.hidden) return undefined;
  return { cmd, option };
}

/** Settings the command line gave: -q and -v stand for a log level. */
export function flagValues(action: Command): Map<string, unknown> {
  const flags = new Map<string, unknown>();
  for (const setting of SETTINGS) {
    const d = declaringCommand(setting, action);
    if (d && d.cmd.getOptionValueSource(setting.option) === 'cli')
      flags.set(setting.key, d.cmd.getOptionValue(setting.option));
  }
  const root = rootOf(action).opts<RootOptions>();
  if (!flags.has('log.level') && (root.verbose || root.quiet))
    flags.set('log.level', root.verbose ? 'debug' : 'warn');
  return flags;
}

/** The profile to use: --profile, else DBBACKUP_PROFILE, else the file's default_profile. */
function chooseProfile(
  root: RootOptions,
  env: NodeJS.ProcessEnv,
  loaded: LoadedConfig | undefined,
  location: ConfigLocation,
): string | undefined {
  const asked = root.profile ?? (env.DBBACKUP_PROFILE || undefined);
  const via = root.profile ? '--profile' : 'DBBACKUP_PROFILE';
  if (asked === undefined) return loaded?.config.defaultProfile;
  if (!loaded)
    throw new UsageError(
      `${via} ${asked}: there is no configuration file (${location.path})`,
      'Create one with "dbbackup config init --profile NAME", or name it with --config FILE.',
    );
  if (!loaded.config.profiles.has(asked)) {
    const known = [...loaded.config.profiles.keys()];
    throw new UsageError(
      `${via} ${asked}: no such profile in ${location.path}`,
      known.length ? `Its profiles: ${known.join(', ')}.` : 'The file has no [profiles.NAME] tables.',
    );
  }
  return asked;
}

/** Reads the files and works out every setting (for `config show` and for applying). */
export async function resolveConfiguration(
  action: Command,
  env: NodeJS.ProcessEnv = process.env,
  cwd: string = process.cwd(),
): Promise<AppliedConfig> {
  const root = rootOf(action).opts<RootOptions>();
  const location = configLocation(typeof root.config === 'string' ? root.config : undefined, env);
  const useFiles = root.config !== false;
  const config = useFiles ? await loadConfig(location) : undefined;
  const reference = useFiles ? await loadReferenceConfig(cwd) : undefined;
  const profile = chooseProfile(root, env, config, location);
  const layers = { flags: flagValues(action), env, config: config?.config, profile, reference };
  return {
    location,
    config,
    reference,
    profile,
    engine: resolveEngine(layers),
    resolved: resolveSettings(layers),
  };
}

/** A setting's value as commander would have parsed it from the command line. */
export function optionValue(setting: Setting, value: SettingValue): string | string[] {
  if (Array.isArray(value)) return value;
  return String(value);
}

/** Fills the command's options from the resolved settings; returns the keys it filled. */
export function applyResolved(action: Command, resolved: Map<string, Resolved>): string[] {
  const applied: string[] = [];
  for (const r of resolved.values()) {
    const { source, value, setting } = r;
    if (value === undefined) continue;
    const fromFile = source.tier === 'profile' || source.tier === 'file' || source.tier === 'reference';
    const fromOwnEnv = source.tier === 'env' && !source.native;
    if (!fromFile && !fromOwnEnv) continue;
    const d = declaringCommand(setting, action);
    if (!d || d.cmd.getOptionValueSource(setting.option) === 'cli') continue;
    d.cmd.setOptionValueWithSource(setting.option, optionValue(setting, value), fromFile ? 'config' : 'env');
    applied.push(setting.key);
  }
  return applied;
}

export async function applyConfiguration(
  action: Command,
  env: NodeJS.ProcessEnv = process.env,
  cwd: string = process.cwd(),
): Promise<AppliedConfig> {
  const applied = await resolveConfiguration(action, env, cwd);
  applyResolved(action, applied.resolved);
  return applied;
}
