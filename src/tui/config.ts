import type { Engine } from '../catalog/naming.js';
import type { ConnectionOptions } from '../engines/connection.js';
import type { OperationOutputs } from '../ops/operation.js';
import type { CompressionAlgorithm } from '../pipeline/compression.js';
import type { CloudSettings } from '../storage/cloud.js';

/**
 * Everything the interactive UI needs from the command line and the configuration, worked out by
 * the CLI exactly as for its own commands (src/cli/commands/tui.ts): flags, environment, profile,
 * file. `reload` works it out again after the settings screen saved a change to the file.
 */
export interface TuiConfig {
  engine: Engine;
  connection(engine: Engine): ConnectionOptions;
  backupDir: string;
  /** A cloud URI from the settings (storage.cloud or provider/bucket/prefix), if any. */
  cloud?: string;
  cloudSettings: CloudSettings;
  /** The WAL archive of the PITR commands (pitr.archive, DBBACKUP_PITR_ARCHIVE, --archive), if any. */
  pitrArchive?: string;
  /** The key file the key fields start with (encryption.key_file, --encryption-key-file). */
  keyFile?: string;
  compression: { algorithm: CompressionAlgorithm; level: number };
  configFile: string;
  profile?: string;
  /** Where each operation's end goes: audit log, metrics, notifications, hooks. */
  outputs: OperationOutputs;
  /** The colours off (NO_COLOR, --no-color). */
  noColor: boolean;
}

export interface TuiStart {
  config: TuiConfig;
  reload(): Promise<TuiConfig>;
}
