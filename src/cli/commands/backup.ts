import { Command } from 'commander';
import { addSingleCommand } from './backup/single.js';
import { addClusterCommand } from './backup/cluster.js';
import { addSampleCommand } from './sample.js';
import { addBaseCommand } from './backup-base.js';
import { addPhysicalCommand } from './backup-physical.js';

/** `backup` and its leaves, one module each (they load the domain only when they run). */
export function backupCommand(): Command {
  const backup = new Command('backup').description('Back up databases');
  addSingleCommand(backup);
  addClusterCommand(backup);
  addSampleCommand(backup);
  addBaseCommand(backup);
  addPhysicalCommand(backup);
  return backup;
}
