import { Command } from 'commander';
import { stopTransfersOnSignal } from '../signals.js';
import { addUploadCommand } from './cloud/upload.js';
import { addDownloadCommand } from './cloud/download.js';
import { addCopyCommand } from './cloud/copy.js';
import { addListCommand } from './cloud/list.js';
import { addVerifyCommand } from './cloud/verify.js';
import { addDeleteCommand } from './cloud/delete.js';
import { addDoctorCommand } from './cloud/doctor.js';

/** `cloud` and its leaves, one module each under cloud/. */
export function cloudCommand(): Command {
  const cloud = new Command('cloud').description('Move, list, check and delete backups in cloud storage');
  // Every cloud subcommand: the first Ctrl-C / SIGTERM cuts its storage connections and ends it.
  cloud.hook('preAction', () => stopTransfersOnSignal());
  addUploadCommand(cloud);
  addDownloadCommand(cloud);
  addCopyCommand(cloud);
  addListCommand(cloud);
  addVerifyCommand(cloud);
  addDeleteCommand(cloud);
  addDoctorCommand(cloud);
  return cloud;
}
