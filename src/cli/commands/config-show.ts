import { Command } from 'commander';
import type { SettingValue } from '../../config/file.js';
import { describeSource, type Resolved } from '../../config/resolve.js';
import { redactUrl } from '../../ops/notify.js';
import { maskUri } from '../../storage/cloud-uri.js';
import { resolveConfiguration } from '../apply-config.js';
import { out, table } from '../context.js';

/** A value as shown: secrets masked (webhook URLs keep only their origin, URIs lose their keys). */
export function shownValue(r: Resolved): SettingValue | undefined {
  const { setting, value } = r;
  if (value === undefined) return undefined;
  if (setting.key === 'notify.url') return (Array.isArray(value) ? value : [String(value)]).map(redactUrl);
  if (setting.secret) return '****';
  if (typeof value === 'string') return maskUri(value);
  return value;
}

function text(value: SettingValue | undefined, r: Resolved): string {
  if (value === undefined) return `(${r.setting.defaultText})`;
  return Array.isArray(value) ? value.join(' ') : String(value);
}

export function configShowCommand(): Command {
  return new Command('show')
    .description('Print the effective settings and where each comes from (secrets masked)')
    .option('--json', 'print as JSON')
    .option('--all', 'also list the settings left at their defaults')
    .addHelpText(
      'after',
      `
Examples:
  dbbackup config show --profile prod
  dbbackup --profile prod --host db2 config show --json     # a flag wins over the profile`,
    )
    .action(async (opts: { json?: boolean; all?: boolean }, cmd: Command) => {
      const applied = await resolveConfiguration(cmd);
      const rows = [...applied.resolved.values()];
      const file = applied.config?.location.path;
      if (opts.json) {
        out.json({
          file: file ?? null,
          profile: applied.profile ?? null,
          profiles: applied.config ? [...applied.config.config.profiles.keys()] : [],
          reference: applied.reference?.path ?? null,
          engine: applied.engine,
          settings: rows.map((r) => ({
            key: r.setting.key,
            value: shownValue(r) ?? null,
            source: r.source.tier,
            from: describeSource(r.source),
            ...(r.source.tier === 'default' ? { default: r.setting.defaultText } : {}),
          })),
        });
        return;
      }
      out.line(`Configuration file: ${file ?? `none (${applied.location.path} does not exist)`}`);
      out.line(`Profile:            ${applied.profile ?? 'none'}`);
      if (applied.reference) out.line(`Reference config:   ${applied.reference.path}`);
      out.line('');
      const shown = rows.filter((r) => opts.all || r.source.tier !== 'default');
      if (!shown.length) out.line('Every setting is at its default (add --all to list them).');
      else
        for (const line of table(
          ['SETTING', 'VALUE', 'FROM'],
          shown.map((r) => [r.setting.key, text(shownValue(r), r), describeSource(r.source)]),
        ))
          out.line(line);
    });
}
