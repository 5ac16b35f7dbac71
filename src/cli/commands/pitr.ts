import { Command } from 'commander';
import { addEnableCommand } from './pitr/enable.js';
import { addDisableCommand } from './pitr/disable.js';
import { addStatusCommand } from './pitr/status.js';

/** `pitr` and its leaves, one module each under pitr/. */
export function pitrCommand(): Command {
  const pitr = new Command('pitr').description(
    'PostgreSQL continuous archiving for point-in-time recovery: enable, disable, status',
  );
  addEnableCommand(pitr);
  addDisableCommand(pitr);
  addStatusCommand(pitr);
  return pitr;
}
