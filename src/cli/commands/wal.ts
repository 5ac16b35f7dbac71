import { Command } from 'commander';
import { addPushCommand } from './wal/push.js';
import { addFetchCommand } from './wal/fetch.js';
import { addProbeCommand } from './wal/probe.js';
import { addListCommand } from './wal/list.js';
import { addVerifyCommand } from './wal/verify.js';

/** `wal` and its leaves, one module each under wal/. */
export function walCommand(): Command {
  const wal = new Command('wal').description(
    'WAL archive commands: push and fetch (for archive_command / restore_command), list, verify',
  );
  addPushCommand(wal, 'push');
  // The reference tool's spelling.
  addPushCommand(wal, 'archive');
  addFetchCommand(wal);
  addProbeCommand(wal);
  addListCommand(wal);
  addVerifyCommand(wal);
  return wal;
}
