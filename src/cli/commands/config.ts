import { Command } from 'commander';
import { configInitCommand } from './config-init.js';
import { configShowCommand } from './config-show.js';
import { configValidateCommand } from './config-validate.js';

export function configCommand(): Command {
  return new Command('config')
    .description('Write, show and check the configuration file (profiles)')
    .addCommand(configInitCommand())
    .addCommand(configShowCommand())
    .addCommand(configValidateCommand());
}
