import { Command } from 'commander';
import { mkdir, open } from 'node:fs/promises';
import path from 'node:path';
import { configLocation } from '../../config/file.js';
import { configTemplate } from '../../config/template.js';
import { errnoCode, errorMessage, UsageError } from '../../errors.js';
import { globals, out } from '../context.js';

export function configInitCommand(): Command {
  return new Command('init')
    .description('Write a commented configuration file (mode 0600) with every setting and one profile')
    .option('--force', 'replace an existing file')
    .addHelpText(
      'after',
      `
The file goes to --config FILE, else $DBBACKUP_CONFIG, else $XDG_CONFIG_HOME/dbbackup/config.toml.
The profile is named by --profile (default "prod").

Examples:
  dbbackup config init --profile prod
  dbbackup --config /etc/dbbackup/config.toml config init --profile nightly`,
    )
    .action(async (opts: { force?: boolean }, cmd: Command) => {
      const g = globals(cmd) as { config?: string | false; profile?: string };
      const location = configLocation(typeof g.config === 'string' ? g.config : undefined);
      const profile = g.profile ?? 'prod';
      await mkdir(path.dirname(location.path), { recursive: true, mode: 0o700 });
      let handle;
      try {
        // Exclusive unless --force: an existing configuration is never overwritten by surprise.
        handle = await open(location.path, opts.force ? 'w' : 'wx', 0o600);
      } catch (err) {
        if (errnoCode(err) === 'EEXIST')
          throw new UsageError(
            `${location.path} already exists`,
            'Edit it, check it with "dbbackup config validate", or add --force to replace it.',
          );
        throw new UsageError(`Cannot write ${location.path}: ${errorMessage(err)}`, 'Check the directory.');
      }
      try {
        await handle.chmod(0o600);
        await handle.writeFile(configTemplate(profile));
      } finally {
        await handle.close();
      }
      out.line(`Wrote ${location.path} (mode 0600) with profile "${profile}", every setting commented out.`);
      out.line(
        'Uncomment what you need, then: dbbackup config validate; dbbackup config show --profile ' + profile,
      );
    });
}
