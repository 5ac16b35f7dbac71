import { Command } from 'commander';
import { readFile, stat } from 'node:fs/promises';
import {
  configLocation,
  formatProblem,
  parseConfigText,
  permissionProblem,
  type ConfigProblem,
} from '../../config/file.js';
import { loadReferenceConfig } from '../../reference/config.js';
import { DbBackupError, errorMessage, UsageError } from '../../errors.js';
import { globals, out } from '../context.js';
import { ExitCode } from '../../exit-codes.js';

export function configValidateCommand(): Command {
  return new Command('validate')
    .description(
      'Check a configuration file: unknown keys and wrong types, one line each with its key and line',
    )
    .argument(
      '[file]',
      'the file (default: --config, $DBBACKUP_CONFIG, then $XDG_CONFIG_HOME/dbbackup/config.toml)',
    )
    .option('--json', 'print the problems as JSON')
    .action(async (fileArg: string | undefined, opts: { json?: boolean }, cmd: Command) => {
      const g = globals(cmd) as { config?: string | false };
      const file = fileArg ?? configLocation(typeof g.config === 'string' ? g.config : undefined).path;
      let text: string;
      let mode: number;
      try {
        mode = (await stat(file)).mode;
        text = await readFile(file, 'utf8');
      } catch (err) {
        throw new UsageError(
          `Cannot read ${file}: ${errorMessage(err)}`,
          'Check the path, or create one with "dbbackup config init".',
        );
      }
      const { config, problems } = await parseConfigText(text, file);
      const insecure = config ? permissionProblem(file, mode, config.secrets) : undefined;
      const all: ConfigProblem[] = [
        ...problems,
        ...(insecure ? [{ key: '(file mode)', message: `${insecure}: run chmod 600 ${file}` }] : []),
      ];
      // The reference tool's file in this directory is read by every command too: say what is not used.
      const reference = fileArg ? undefined : await loadReferenceConfig();
      if (opts.json) {
        out.json({
          file,
          valid: all.length === 0,
          profiles: config ? [...config.profiles.keys()] : [],
          problems: all,
          reference: reference ? { file: reference.path, warnings: reference.warnings } : null,
        });
      } else {
        for (const p of all) out.line(formatProblem(file, p));
        for (const w of reference?.warnings ?? []) out.note(`warning: ${w}`);
        if (!all.length) {
          const names = config ? [...config.profiles.keys()] : [];
          out.line(`${file}: valid (${names.length ? `profiles: ${names.join(', ')}` : 'no profiles'})`);
        }
      }
      if (all.length)
        throw new DbBackupError(`${file} has ${all.length === 1 ? 'a problem' : `${all.length} problems`}`, {
          exitCode: ExitCode.Usage,
          hint: 'Fix the keys on the lines named above; "dbbackup config init" writes a commented example.',
        });
    });
}
