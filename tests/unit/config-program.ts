import { Command } from 'commander';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'smol-toml';
import { applyConfiguration, type AppliedConfig } from '../../src/cli/apply-config.js';
import { backupCommand } from '../../src/cli/commands/backup.js';
import { cleanupCommand } from '../../src/cli/commands/cleanup.js';
import { cloudCommand } from '../../src/cli/commands/cloud.js';
import { configCommand } from '../../src/cli/commands/config.js';
import { historyCommand } from '../../src/cli/commands/history.js';
import { keygenCommand } from '../../src/cli/commands/keygen.js';
import { listCommand } from '../../src/cli/commands/list.js';
import { preflightCommand } from '../../src/cli/commands/preflight.js';
import { rekeyCommand } from '../../src/cli/commands/rekey.js';
import { restoreCommand } from '../../src/cli/commands/restore.js';
import { statusCommand } from '../../src/cli/commands/status.js';
import { verifyCommand } from '../../src/cli/commands/verify.js';
import { versionCommand } from '../../src/cli/commands/version.js';
import { commandPath } from '../../src/cli/context.js';
import { configureTree, createProgram } from '../../src/cli/program.js';
import type { SettingValue } from '../../src/config/file.js';

/**
 * The real program (every command with its real options, the real configuration step) with the
 * actions replaced: a parse shows what a command's action would receive.
 */

/** What the PITR branch's commands declare; they are not on this branch. */
function pitrStandIn(): Command {
  return new Command('pitr').addCommand(
    new Command('status').option('--archive <dir|uri>', 'the WAL archive').option('--json', 'as JSON'),
  );
}

export function realProgram(): Command {
  const program = createProgram();
  for (const make of [
    backupCommand,
    restoreCommand,
    verifyCommand,
    cleanupCommand,
    cloudCommand,
    listCommand,
    keygenCommand,
    rekeyCommand,
    statusCommand,
    preflightCommand,
    versionCommand,
    configCommand,
    historyCommand,
    pitrStandIn,
  ])
    program.addCommand(make());
  configureTree(program);
  return program;
}

export function leaves(cmd: Command): Command[] {
  return cmd.commands.length ? cmd.commands.flatMap(leaves) : [cmd];
}

/** Arguments that satisfy each command's required operands. */
export const OPERANDS: Record<string, string[]> = {
  'backup single': ['shop'],
  'backup sample': ['shop'],
  'backup cluster': [],
  'restore single': ['shop.dump'],
  'restore cluster': ['cluster_x'],
  cleanup: ['/nonexistent-dir'],
  'pitr status': [],
};

export interface Parsed {
  /** The options the action saw (its own and the global ones). */
  options: Record<string, unknown>;
  applied: AppliedConfig;
  action: Command;
}

/** Parses `argv` (after the program name) with `env` and `cwd`; the action only records. */
export async function parseWith(argv: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<Parsed> {
  const program = realProgram();
  let seen: Parsed | undefined;
  let applied: AppliedConfig | undefined;
  program.hook('preAction', async (_p, action) => {
    applied = await applyConfiguration(action, env, cwd);
  });
  for (const leaf of leaves(program)) {
    leaf.action((...args: unknown[]) => {
      const action = args[args.length - 1] as Command;
      if (!applied) throw new Error('preAction did not run');
      seen = { options: action.optsWithGlobals(), applied, action };
    });
  }
  await program.parseAsync(['node', 'dbbackup', ...argv]);
  if (!seen) throw new Error(`no action ran for ${argv.join(' ')}`);
  return seen;
}

/** The first command (in help order) that declares a visible option with this attribute. */
export function commandFor(option: string, scope: 'global' | 'command'): string {
  if (scope === 'global') return 'backup single';
  const found = leaves(realProgram()).find((c) =>
    c.options.some((o) => o.attributeName() === option && !o.hidden && !o.negate),
  );
  if (!found) throw new Error(`no command declares --${option}`);
  return commandPath(found);
}

export type Doc = Record<string, unknown>;

/** `connection.host` = v inside `doc[section]` (creating the table). */
export function put(doc: Doc, key: string, value: SettingValue): void {
  const [section, name] = key.split('.') as [string, string];
  const table = (doc[section] ??= {}) as Record<string, unknown>;
  table[name] = value;
}

export async function writeConfig(dir: string, doc: Doc, mode = 0o600): Promise<string> {
  const file = path.join(dir, 'config.toml');
  await writeFile(file, stringify(doc), { mode });
  return file;
}
