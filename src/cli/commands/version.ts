import { Command } from 'commander';
import { TOOL_VERSION } from '../../version.js';
import { out } from '../context.js';

export function versionCommand(): Command {
  return new Command('version')
    .description('Print the dbbackup version')
    .option('--json', 'print as JSON')
    .action((opts: { json?: boolean }) => {
      if (opts.json) out.json({ name: 'dbbackup', version: TOOL_VERSION, node: process.version });
      else out.line(`dbbackup ${TOOL_VERSION} (Node.js ${process.version})`);
    });
}
