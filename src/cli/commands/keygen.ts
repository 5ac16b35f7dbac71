import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { Command } from 'commander';
import { keyId } from '../../crypto/protectors.js';
import { generateIdentity, generateSymmetricKey, identityFileText, keyFileText } from '../../crypto/keys.js';
import { errnoCode, errorMessage, SafetyError, StorageError } from '../../errors.js';
import { out } from '../context.js';

/** Writes a secret file readable only by its owner; never replaces an existing file unless `force`. */
async function writeSecretFile(file: string, content: string, force: boolean): Promise<void> {
  // With --force, a temp file renamed over the old one: the old key stays intact until the new
  // one is completely on disk.
  const target = force
    ? path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`)
    : file;
  let handle;
  try {
    handle = await open(target, 'wx', 0o600);
  } catch (err) {
    if (errnoCode(err) === 'EEXIST') {
      throw new SafetyError(`${file} already exists; refusing to overwrite a key`, {
        hint: 'Choose another path, or add --force if no backup still needs the old key.',
      });
    }
    throw new StorageError(`Cannot create ${file}: ${errorMessage(err)}`, { cause: err });
  }
  try {
    await handle.chmod(0o600);
    await handle.writeFile(content);
    await handle.sync();
    await handle.close();
    if (force) await rename(target, file);
  } catch (err) {
    await handle.close().catch(() => undefined);
    await rm(target, { force: true });
    throw new StorageError(`Cannot write ${file}: ${errorMessage(err)}`, { cause: err });
  }
}

export function keygenCommand(): Command {
  return new Command('keygen')
    .description(
      'Create an encryption identity (X25519 private key; prints its public recipient) or, with --symmetric, a 32-byte key file',
    )
    .requiredOption('-o, --output <file>', 'where to write the new identity or key (created with mode 0600)')
    .option(
      '--symmetric',
      'write a random 32-byte key (base64) for --encryption-key-file instead of an identity',
    )
    .option(
      '--force',
      'replace an existing file (any backup encrypted only to the old key becomes unreadable)',
    )
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
Public-key encryption (the backup host never holds a key that can decrypt):
  # on the restore host, keep identity.txt secret and safe:
  dbbackup keygen --output ~/.config/dbbackup/identity.txt
  # on the backup host, encrypt to the printed recipient:
  dbbackup backup single shop --recipient age1…
  # restore:
  dbbackup restore single BACKUP --identity-file ~/.config/dbbackup/identity.txt

Symmetric key:
  dbbackup keygen --symmetric --output /etc/dbbackup/backup.key
  dbbackup backup single shop --encryption-key-file /etc/dbbackup/backup.key

Identities and recipients use age's encoding (AGE-SECRET-KEY-1… / age1…): age-keygen output works too.`,
    )
    .action(async (opts: { output: string; symmetric?: boolean; force?: boolean; json?: boolean }) => {
      const file = opts.output;
      if (opts.symmetric) {
        const key = generateSymmetricKey();
        const id = keyId(key).toString('hex');
        await writeSecretFile(file, keyFileText(key), Boolean(opts.force));
        key.fill(0);
        if (opts.json) out.json({ kind: 'key', file, keyId: id });
        else
          out.line(
            `Key written to ${file} (key id ${id}). Keep a copy somewhere safe: without it no backup encrypted with it can be restored.`,
          );
        return;
      }
      const identity = generateIdentity();
      await writeSecretFile(file, identityFileText(identity), Boolean(opts.force));
      identity.privateKey.fill(0);
      if (opts.json) out.json({ kind: 'identity', file, recipient: identity.recipient });
      else {
        out.note(`Identity written to ${file}; keep it secret and keep a copy: restores need it.`);
        out.note('Encrypt backups to this recipient with --recipient:');
        out.line(identity.recipient);
      }
    });
}
