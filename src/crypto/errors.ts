import { DbBackupError } from '../errors.js';

/**
 * A key, passphrase or identity is missing, malformed, unsafe to use (readable by others), or does
 * not unlock the backup. Distinct from IntegrityError: the backup itself may be perfectly fine.
 */
export class EncryptionKeyError extends DbBackupError {}
