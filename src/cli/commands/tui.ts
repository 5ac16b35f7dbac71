import { Command } from 'commander';
import { configLocation } from '../../config/file.js';
import { InterruptedError, UsageError } from '../../errors.js';
import { ExitCode } from '../../exit-codes.js';
import { log } from '../../log/logger.js';
import type { TuiConfig } from '../../tui/config.js';
import { applyConfiguration } from '../apply-config.js';
import {
  backupDir,
  cloudSettings,
  cloudUri,
  compressionChoice,
  connectionOptions,
  explicitEngine,
  globals,
} from '../context.js';
import { operationOutputs } from '../operation-run.js';

/** After a stopped operation: how long the process may take to end on its own. */
const LEFTOVER_GRACE_MS = 3000;

interface RootOptions {
  config?: string | false;
  profile?: string;
  logFile?: string;
  /** The WAL archive the point-in-time restore screen starts with (pitr.archive in the config). */
  archive?: string;
  /** The key file the key fields start with (encryption.key_file in the config). */
  encryptionKeyFile?: string;
}

/** The UI's view of the options, worked out as for every command (flags, environment, profile, file). */
function tuiConfig(cmd: Command): TuiConfig {
  const g = globals(cmd);
  const root = cmd.optsWithGlobals<RootOptions>();
  return {
    engine: explicitEngine(g) ?? 'postgres',
    connection: (engine) => connectionOptions(g, engine),
    backupDir: backupDir(g),
    cloud: cloudUri(g, undefined),
    cloudSettings: cloudSettings(g),
    pitrArchive: root.archive || undefined,
    keyFile: root.encryptionKeyFile || undefined,
    compression: compressionChoice(g),
    configFile: configLocation(typeof root.config === 'string' ? root.config : undefined).path,
    profile: root.profile ?? (process.env.DBBACKUP_PROFILE || undefined),
    outputs: operationOutputs(g),
    noColor: g.color === false || Boolean(process.env.NO_COLOR),
  };
}

export function tuiCommand(): Command {
  return new Command('tui')
    .alias('interactive')
    .description('Open the interactive terminal UI (also: dbbackup with no arguments on a terminal)')
    .option(
      '--archive <dir|uri>',
      'the WAL archive the point-in-time restore screen starts with (pitr.archive)',
    )
    .option(
      '--encryption-key-file <file>',
      'the key file the screens start with for encrypting and decrypting (encryption.key_file)',
    )
    .action(async (_opts: unknown, cmd: Command) => {
      if (!process.stdin.isTTY || !process.stdout.isTTY)
        throw new UsageError(
          'The interactive UI needs a terminal (stdin and stdout are not one)',
          'Run it in a terminal, or use the commands: dbbackup --help.',
        );
      const config = tuiConfig(cmd);
      // Log lines on stderr would tear through the screen: only errors (and the --log-file) while it shows.
      log.configure({ format: 'text', level: 'error', file: cmd.optsWithGlobals<RootOptions>().logFile });
      // Ink and its components decide on colour when loaded (they honour --no-color, not NO_COLOR):
      // without colours, none of theirs either.
      if (config.noColor) process.env.FORCE_COLOR = '0';
      // Ink draws only the last frame when CI or CONTINUOUS_INTEGRATION is set (read when it loads):
      // under such a variable (a CI runner's shell, some dev containers) the UI stayed blank. The user
      // asked for the UI on a terminal, so it is drawn; child processes see the variable as before.
      const ci = { CI: process.env.CI, CONTINUOUS_INTEGRATION: process.env.CONTINUOUS_INTEGRATION };
      process.env.CI = 'false';
      process.env.CONTINUOUS_INTEGRATION = 'false';
      const { runTui } = await import('../../tui/run.js');
      for (const [name, value] of Object.entries(ci)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
      const code = await runTui({
        config,
        reload: async () => {
          await applyConfiguration(cmd);
          return tuiConfig(cmd);
        },
      });
      if (code === ExitCode.Interrupted) {
        // The stopped operation has cleaned up and been recorded; a query it left waiting on the
        // server (a lock held by another session) must not keep the process alive.
        setTimeout(() => process.exit(ExitCode.Interrupted), LEFTOVER_GRACE_MS).unref();
        throw new InterruptedError('Quit while an operation ran: it was stopped and cleaned up', {
          hint: 'An interrupted backup keeps nothing; an interrupted restore drops the database it created.',
        });
      }
    });
}
