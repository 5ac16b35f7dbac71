import { stat } from 'node:fs/promises';
import type { EncryptionFlags, KeyProtector, KeyUnlocker } from '../crypto/index.js';
import { errnoCode, errorMessage, UsageError } from '../errors.js';
import {
  describeArchiveEncryption,
  sameProtections,
  type ArchiveIdentity,
  type ArchiveProtection,
} from './archive.js';
import { secrets } from '../secrets.js';

/**
 * Keys and environment for the WAL commands. The crypto modules are loaded only when a key option
 * is given or an object is encrypted: an unencrypted push must not pay for them.
 */

/** True when any encrypting option is set. */
export function encryptFlagsGiven(f: EncryptionFlags): boolean {
  return Boolean(
    f.encrypt ||
    f.encryptionKeyFile ||
    f.encryptionKeyEnv ||
    f.passphraseFile ||
    f.recipient?.length ||
    f.recipientsFile?.length,
  );
}

/** What the archive records about a protector, or undefined for a passphrase. */
export function protectionOf(p: KeyProtector): ArchiveProtection | undefined {
  if (p.kind === 'key') return { kind: 'key', keyId: p.description.replace(/^key /, '') };
  if (p.kind === 'x25519') return { kind: 'recipient', recipient: p.description };
  return undefined;
}

const PASSPHRASE_HINT =
  'A passphrase costs seconds of key derivation per object, and WAL is pushed segment by segment: use a key file (dbbackup keygen --symmetric) or a recipient (dbbackup keygen).';

/** The protectors of the flags, as an archive may record them: passphrases are refused. */
export async function archiveProtectors(
  flags: EncryptionFlags,
): Promise<{ protectors: KeyProtector[]; protections: ArchiveProtection[] }> {
  if (!encryptFlagsGiven(flags)) return { protectors: [], protections: [] };
  if (flags.passphraseFile)
    throw new UsageError('A WAL archive cannot be encrypted with a passphrase', PASSPHRASE_HINT);
  const { protectorsFromFlags } = await import('../crypto/index.js');
  const protectors = await protectorsFromFlags(flags);
  const protections = protectors.map(protectionOf).filter((p): p is ArchiveProtection => Boolean(p));
  return { protectors, protections };
}

/**
 * The protectors a push (or a base backup) into this archive uses: exactly the archive's, so that
 * the keys recorded at `pitr enable` open every object. Anything else is refused before a byte moves.
 */
export async function protectorsForArchive(
  flags: EncryptionFlags,
  identity: Pick<ArchiveIdentity, 'encryption'>,
): Promise<KeyProtector[]> {
  const { protectors, protections } = await archiveProtectors(flags);
  const wanted = identity.encryption?.protections ?? [];
  if (!wanted.length && protectors.length)
    throw new UsageError(
      'The archive is not encrypted, but encryption options were given',
      'Drop the key options, or start a new, encrypted archive with "dbbackup pitr enable".',
    );
  if (wanted.length && !protectors.length)
    throw new UsageError(
      `The archive is encrypted (${describeArchiveEncryption(identity)}) and no key option was given`,
      'Give the same --encryption-key-file / --recipient options as "dbbackup pitr enable" did.',
    );
  if (!sameProtections(wanted, protections))
    throw new UsageError(
      `The keys given (${describeArchiveEncryption({ encryption: { protections } })}) are not the archive's (${describeArchiveEncryption(identity)})`,
      'Every object of an archive is encrypted for the same keys: give the options "dbbackup pitr enable" recorded.',
    );
  return protectors;
}

/** Unlockers from the decrypt options; loaded on first need. */
export function lazyUnlockers(flags: EncryptionFlags): () => Promise<readonly KeyUnlocker[]> {
  let loaded: Promise<KeyUnlocker[]> | undefined;
  return () =>
    (loaded ??= import('../crypto/index.js').then(({ unlockersFromFlags }) => unlockersFromFlags(flags)));
}

/** Variables whose values are secrets: masked in every message once loaded from an env file. */
const SECRET_NAMES = /(SECRET|PASSWORD|KEY|TOKEN|SAS|CONNECTION_STRING|CREDENTIALS)/i;

/**
 * Loads `KEY=VALUE` lines (cloud credentials for the archive) into the environment. The file must
 * be a regular file that only its owner can read: archive_command runs as the server's OS user, and
 * these are the archive's credentials.
 */
export async function loadEnvFile(file: string): Promise<void> {
  const info = await stat(file).catch((err: unknown) => {
    throw new UsageError(
      `Cannot read --env-file ${file}: ${errnoCode(err) === 'ENOENT' ? 'it does not exist' : errorMessage(err)}`,
      'Check the path; the file must be readable by the user running this command (the server OS user for archive_command).',
    );
  });
  if (!info.isFile()) throw new UsageError(`--env-file ${file} is not a regular file`);
  if (info.mode & 0o077)
    throw new UsageError(
      `--env-file ${file} is accessible by other users (mode ${(info.mode & 0o777).toString(8).padStart(4, '0')})`,
      `It holds credentials: chmod 600 ${file}`,
    );
  const before = { ...process.env };
  try {
    process.loadEnvFile(file);
  } catch (err) {
    throw new UsageError(`Cannot read --env-file ${file}: ${errorMessage(err)}`);
  }
  for (const [name, value] of Object.entries(process.env))
    if (value && before[name] !== value && SECRET_NAMES.test(name)) secrets.remember(value);
}
