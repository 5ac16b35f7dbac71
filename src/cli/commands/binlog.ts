import { Command } from 'commander';
import { addArchiveCommand } from './binlog/archive.js';
import { addStreamCommand } from './binlog/stream.js';
import { addStatusCommand } from './binlog/status.js';

/** `binlog` and its leaves, one module each under binlog/. */
export function binlogCommand(): Command {
  const binlog = new Command('binlog').description(
    'MariaDB binary log archiving for point-in-time recovery: archive (for cron), stream (continuous), status',
  );
  addArchiveCommand(binlog);
  addStreamCommand(binlog);
  addStatusCommand(binlog);
  return binlog;
}
