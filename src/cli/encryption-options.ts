import { Option, type Command } from 'commander';
import type { EncryptionFlags } from '../crypto/index.js';

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** Flags of commands that write backups: which keys the backup is encrypted for. */
export function withEncryptOptions(cmd: Command): Command {
  return cmd
    .option(
      '--encrypt',
      'encrypt the backup (with the key in DBBACKUP_ENCRYPTION_KEY unless another source is given)',
    )
    .option(
      '--encryption-key-file <file>',
      'encrypt with a 32-byte key file (raw or base64; dbbackup keygen --symmetric)',
    )
    .option('--encryption-key-env <var>', 'encrypt with the base64 key in this environment variable')
    .option('--passphrase-file <file>', 'encrypt with a passphrase from a file (scrypt)')
    .option(
      '--recipient <age1…>',
      'encrypt to a public key: only its identity can decrypt (repeatable)',
      collect,
    )
    .option('--recipients-file <file>', 'encrypt to every public key listed in a file (repeatable)', collect)
    .option('--insecure-key-file', 'accept key files readable by group or others')
    .addOption(
      // Hidden, accepted only to be refused with a hint (protectorsFromFlags): a backup needs no private key.
      new Option('--identity-file <file>', 'refused: identities are for decrypting')
        .hideHelp()
        .argParser(collect),
    );
}

/** Flags of commands that read backups: which keys may unlock an encrypted one (detected, no flag needed). */
export function withDecryptOptions(cmd: Command): Command {
  return cmd
    .option('--encryption-key-file <file>', 'key file for encrypted backups')
    .option(
      '--encryption-key-env <var>',
      'environment variable holding the base64 key (default DBBACKUP_ENCRYPTION_KEY)',
    )
    .option('--passphrase-file <file>', 'passphrase file for encrypted backups')
    .option(
      '--identity-file <file>',
      'age identity (AGE-SECRET-KEY-1…) for backups encrypted to a recipient (repeatable)',
      collect,
    )
    .option('--insecure-key-file', 'accept key files readable by group or others');
}

export function encryptionFlags(opts: EncryptionFlags): EncryptionFlags {
  return {
    encrypt: opts.encrypt,
    encryptionKeyFile: opts.encryptionKeyFile,
    encryptionKeyEnv: opts.encryptionKeyEnv,
    passphraseFile: opts.passphraseFile,
    recipient: opts.recipient,
    recipientsFile: opts.recipientsFile,
    identityFile: opts.identityFile,
    insecureKeyFile: opts.insecureKeyFile,
  };
}

/** The new protections of `rekey`: the backup options with a `--new-` prefix (as restic's --new-password-file). */
export interface NewKeyFlags {
  newEncryptionKeyFile?: string;
  newEncryptionKeyEnv?: string;
  newPassphraseFile?: string;
  newRecipient?: string[];
  newRecipientsFile?: string[];
  insecureKeyFile?: boolean;
}

/** Flags of `rekey`: the keys the backup gets instead of (or, with --add, besides) its current ones. */
export function withNewKeyOptions(cmd: Command): Command {
  return cmd
    .option(
      '--new-encryption-key-file <file>',
      'new protection: a 32-byte key file (dbbackup keygen --symmetric)',
    )
    .option('--new-encryption-key-env <var>', 'new protection: the base64 key in this environment variable')
    .option('--new-passphrase-file <file>', 'new protection: a passphrase from a file (scrypt)')
    .option(
      '--new-recipient <age1…>',
      'new protection: a public key; only its identity can decrypt (repeatable)',
      collect,
    )
    .option(
      '--new-recipients-file <file>',
      'new protection: every public key listed in a file (repeatable)',
      collect,
    );
}

/** The `--new-…` flags as the encryption flags protectorsFromFlags reads. */
export function newKeyFlags(opts: NewKeyFlags): EncryptionFlags {
  return {
    encryptionKeyFile: opts.newEncryptionKeyFile,
    encryptionKeyEnv: opts.newEncryptionKeyEnv,
    passphraseFile: opts.newPassphraseFile,
    recipient: opts.newRecipient,
    recipientsFile: opts.newRecipientsFile,
    insecureKeyFile: opts.insecureKeyFile,
  };
}
