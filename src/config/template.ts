import { envVarsFor, SECTIONS, SETTINGS, type Setting } from './settings.js';

/**
 * The commented file `dbbackup config init` writes: every setting, commented out, with its flag,
 * environment variables and meaning. Shared settings (logs, metrics, notifications, hooks) sit at
 * the top level; the rest in the named profile. It parses and validates as it is.
 */

/** Sections that usually apply to every profile. */
const SHARED = new Set(['log', 'metrics', 'notify', 'hooks']);

function envNames(setting: Setting): string {
  const names = [
    ...new Set([...envVarsFor(setting, 'postgres'), ...envVarsFor(setting, 'mysql')].map((e) => e.name)),
  ];
  return names.join(', ');
}

function section(name: string, header: string): string[] {
  const lines = [`[${header}]`];
  for (const s of SETTINGS.filter((x) => x.key.startsWith(`${name}.`))) {
    lines.push(`# ${s.description}.`);
    lines.push(`#   ${s.flag} | env ${envNames(s)} | default: ${s.defaultText}`);
    lines.push(`# ${s.key.slice(name.length + 1)} = ${s.example}`);
  }
  return [...lines, ''];
}

export function configTemplate(profile: string): string {
  const quoted = /^[A-Za-z0-9_-]+$/.test(profile) ? profile : JSON.stringify(profile);
  return [
    '# dbbackup configuration (TOML), written by "dbbackup config init".',
    '#',
    '# For every setting: command-line flag > environment variable > profile > top level of this',
    '# file > ./.dbbackup.conf (the reference tool\'s) > default. "dbbackup config show" prints what',
    '# applies and where it came from; "dbbackup config validate" checks this file.',
    '# A file holding a password, a cloud secret key or a webhook URL must be readable only by',
    '# its owner (chmod 600), as key files are; prefer password_file.',
    '',
    '# The profile used when neither --profile nor DBBACKUP_PROFILE names one.',
    `default_profile = ${JSON.stringify(profile)}`,
    '',
    '# ---- Top level: applies to every profile (a profile may set these too) ----',
    '',
    ...SECTIONS.filter((s) => SHARED.has(s)).flatMap((s) => section(s, s)),
    `# ---- Profile "${profile}": dbbackup --profile ${profile} … ----`,
    '',
    ...SECTIONS.filter((s) => !SHARED.has(s)).flatMap((s) => section(s, `profiles.${quoted}.${s}`)),
  ].join('\n');
}
