import type { Command } from 'commander';
import type { EncryptionFlags } from '../crypto/index.js';
import { withEncryptOptions } from './encryption-options.js';

/** What `binlog archive` and `binlog stream` share. */

export interface BinlogOptions extends EncryptionFlags {
  archive?: string;
  envFile?: string;
  spoolDir?: string;
  json?: boolean;
}

export function archiveOptions(cmd: Command): Command {
  return withEncryptOptions(cmd)
    .option('--archive <dir|uri>', 'the binlog archive (a directory or s3://, azure://, gs://)')
    .option('--env-file <file>', 'KEY=VALUE file (mode 0600) with cloud credentials')
    .option(
      '--spool-dir <dir>',
      'local directory for binlogs on their way (default: a private temporary one)',
    )
    .option('--json', 'print the result as JSON');
}
