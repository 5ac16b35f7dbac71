import { randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { errnoCode, errorMessage, UsageError } from '../errors.js';
import { formatIdentity, formatRecipient, parseIdentity, parseRecipient } from './encoding.js';
import { EncryptionKeyError } from './errors.js';
import { CHUNK_SIZE, FORMAT_VERSION, type EncryptionHeader } from './format.js';
import type { EncryptionDescription, ProtectionDescription } from './metadata.js';
import { KEY_BYTES, x25519KeyPair, x25519PublicOf } from './primitives.js';
import {
  DEFAULT_SCRYPT,
  identityUnlocker,
  keyUnlocker,
  keyProtector,
  passphraseProtector,
  passphraseUnlocker,
  recipientProtector,
  type KeyProtector,
  type KeyUnlocker,
  type ScryptParams,
} from './protectors.js';
import { secrets } from '../secrets.js';

export { formatIdentity, formatRecipient, parseIdentity, parseRecipient };

export const DEFAULT_KEY_ENV = 'DBBACKUP_ENCRYPTION_KEY';

export interface SecretFileOptions {
  /** Accept a file that group or others can read (--insecure-key-file). */
  insecure?: boolean;
}

/**
 * Refuses a secret file that group or others can read or write (mode & 0o077), unless `insecure`.
 * Not applied on Windows, where the mode bits mean nothing.
 */
export async function checkSecretFilePermissions(file: string, opts: SecretFileOptions = {}): Promise<void> {
  const info = await stat(file).catch((err: unknown) => {
    throw unreadable(file, err);
  });
  if (!info.isFile()) throw new EncryptionKeyError(`${file} is not a regular file`);
  if (opts.insecure || process.platform === 'win32') return;
  const mode = info.mode & 0o777;
  if (mode & 0o077) {
    throw new EncryptionKeyError(
      `Key file ${file} is accessible by other users (mode ${mode.toString(8).padStart(4, '0')})`,
      { hint: `Run: chmod 600 ${file}   (or pass --insecure-key-file to use it anyway)` },
    );
  }
}

function unreadable(file: string, err: unknown): EncryptionKeyError {
  const code = errnoCode(err);
  return new EncryptionKeyError(
    `Cannot read key file ${file}: ${code === 'ENOENT' ? 'it does not exist' : errorMessage(err)}`,
    {
      hint: code === 'ENOENT' ? 'Check the path; create a key with "dbbackup keygen".' : undefined,
      cause: err,
    },
  );
}

async function readSecretFile(file: string, opts: SecretFileOptions): Promise<Buffer> {
  await checkSecretFilePermissions(file, opts);
  return readFile(file).catch((err: unknown) => {
    throw unreadable(file, err);
  });
}

const BASE64_KEY = /^[A-Za-z0-9+/]{43}=$/;

/** The key in `text` if it is the standard base64 of exactly 32 bytes (surrounding whitespace ignored). */
function base64Key(text: string): Buffer | undefined {
  const trimmed = text.trim();
  return BASE64_KEY.test(trimmed) ? Buffer.from(trimmed, 'base64') : undefined;
}

/**
 * A 32-byte key from a file holding either the standard base64 of 32 bytes (what
 * `dbbackup keygen --symmetric` writes) or exactly 32 raw bytes. Anything else is refused, never
 * silently taken as a passphrase.
 */
export async function loadKeyFile(file: string, opts: SecretFileOptions = {}): Promise<Buffer> {
  const content = await readSecretFile(file, opts);
  const fromBase64 = base64Key(content.toString('latin1'));
  if (fromBase64) return fromBase64;
  if (content.length === KEY_BYTES) return content;
  throw new EncryptionKeyError(
    `Key file ${file} does not hold a key: expected 32 raw bytes or the base64 of 32 bytes, found ${content.length} bytes`,
    {
      hint: 'Create a key with "dbbackup keygen --symmetric --output FILE"; for a passphrase use --passphrase-file.',
    },
  );
}

/** The key in environment variable `name` (base64 of 32 bytes), or undefined if it is unset or empty. */
export function loadKeyFromEnv(
  name = DEFAULT_KEY_ENV,
  env: NodeJS.ProcessEnv = process.env,
): Buffer | undefined {
  const value = env[name];
  if (value === undefined || value.trim() === '') return undefined;
  const key = base64Key(value);
  if (!key) {
    throw new EncryptionKeyError(
      `Environment variable ${name} does not hold a key: expected the base64 of 32 bytes`,
      {
        hint: 'Generate one with "dbbackup keygen --symmetric --output FILE" and export its content; for a passphrase use --passphrase-file.',
      },
    );
  }
  return key;
}

/** The passphrase in a file: its bytes without trailing line breaks. */
export async function loadPassphraseFile(file: string, opts: SecretFileOptions = {}): Promise<Buffer> {
  const content = await readSecretFile(file, opts);
  let end = content.length;
  while (end > 0 && (content[end - 1] === 0x0a || content[end - 1] === 0x0d)) end--;
  if (end === 0) throw new EncryptionKeyError(`Passphrase file ${file} is empty`);
  secrets.remember(content.subarray(0, end).toString('utf8'));
  return content.subarray(0, end);
}

/** Meaningful lines of an age-style list: no blank lines, no `#` comments. */
function listLines(text: string): Array<{ line: string; number: number }> {
  return text
    .split(/\r?\n/)
    .map((line, i) => ({ line: line.trim(), number: i + 1 }))
    .filter(({ line }) => line !== '' && !line.startsWith('#'));
}

/**
 * Recipients' public keys from `--recipient` values and `--recipients-file` files (one `age1…` per
 * line, `#` comments), without duplicates. Recipients are public: no permission check.
 */
export async function loadRecipients(
  recipients: readonly string[],
  files: readonly string[] = [],
): Promise<Buffer[]> {
  const keys: Buffer[] = recipients.map((r) => parseRecipient(r, 'Recipient'));
  for (const file of files) {
    const text = await readFile(file, 'utf8').catch((err: unknown) => {
      throw new EncryptionKeyError(`Cannot read recipients file ${file}: ${errorMessage(err)}`, {
        cause: err,
      });
    });
    const lines = listLines(text);
    if (!lines.length) throw new EncryptionKeyError(`Recipients file ${file} lists no recipient`);
    for (const { line, number } of lines) keys.push(parseRecipient(line, `${file}:${number}`));
  }
  return keys.filter((k, i) => keys.findIndex((o) => o.equals(k)) === i);
}

/** The private keys in an identity file (age-keygen format: `AGE-SECRET-KEY-1…` lines, `#` comments). */
export async function loadIdentityFile(file: string, opts: SecretFileOptions = {}): Promise<Buffer[]> {
  const text = (await readSecretFile(file, opts)).toString('utf8');
  const keys: Buffer[] = [];
  for (const { line, number } of listLines(text)) {
    const key = parseIdentity(line);
    if (!key) {
      throw new EncryptionKeyError(`${file}:${number} is not an X25519 identity`, {
        hint: line.startsWith('age1')
          ? 'That is a public recipient; decryption needs the secret identity file written by "dbbackup keygen".'
          : 'An identity file holds "AGE-SECRET-KEY-1…" lines, as written by "dbbackup keygen" or age-keygen.',
      });
    }
    keys.push(key);
  }
  if (!keys.length) throw new EncryptionKeyError(`Identity file ${file} holds no identity`);
  return keys;
}

export interface GeneratedIdentity {
  privateKey: Buffer;
  publicKey: Buffer;
  /** `AGE-SECRET-KEY-1…` */
  identity: string;
  /** `age1…` */
  recipient: string;
}

export function generateIdentity(): GeneratedIdentity {
  const { privateKey, publicKey } = x25519KeyPair();
  return {
    privateKey,
    publicKey,
    identity: formatIdentity(privateKey),
    recipient: formatRecipient(publicKey),
  };
}

/** The identity's public recipient. */
export function recipientOf(privateKey: Buffer): string {
  return formatRecipient(x25519PublicOf(privateKey));
}

/** An identity file in age-keygen's layout, so age tools read it too. */
export function identityFileText(id: GeneratedIdentity, created = new Date()): string {
  return `# created: ${created.toISOString().replace(/\.\d{3}Z$/, 'Z')}\n# public key: ${id.recipient}\n${id.identity}\n`;
}

export function generateSymmetricKey(): Buffer {
  return randomBytes(KEY_BYTES);
}

/** A symmetric key file's content: base64 and a newline. */
export function keyFileText(key: Buffer): string {
  return `${key.toString('base64')}\n`;
}

/** What to record in a backup's metadata about its encryption (schema: metadata.ts); no key material. */
export function describeEncryption(header: EncryptionHeader): EncryptionDescription {
  return {
    format: 'dbbackup-enc',
    formatVersion: FORMAT_VERSION,
    cipher: header.cipher,
    chunkSize: CHUNK_SIZE,
    protections: header.stanzas.map((s): ProtectionDescription => {
      switch (s.kind) {
        case 'key':
          return { kind: 'key', keyId: s.keyId.toString('hex') };
        case 'scrypt':
          return { kind: 'passphrase', kdf: 'scrypt', logN: s.logN, r: s.r, p: s.p };
        case 'x25519':
          return { kind: 'recipient', recipient: formatRecipient(s.recipient) };
        case 'unknown':
          return { kind: 'unknown', type: s.type };
      }
    }),
  };
}

/** The encryption options as the CLI spells them (commander's camelCase). */
export interface EncryptionFlags {
  /** `--encrypt`: encrypt with whatever sources are given, the key env var by default. */
  encrypt?: boolean;
  encryptionKeyFile?: string;
  /** `--encryption-key-env VAR`; leave undefined (no commander default) so "given" can be told apart. */
  encryptionKeyEnv?: string;
  passphraseFile?: string;
  recipient?: string[];
  recipientsFile?: string[];
  identityFile?: string[];
  insecureKeyFile?: boolean;
}

/**
 * The protectors for a backup, or [] when no encryption was asked for. Encryption is on when a key
 * file, passphrase file, recipient or recipients file is given, or `--encrypt` /
 * `--encryption-key-env`; the environment key is used when its variable is named explicitly, or
 * with `--encrypt` when nothing else is given. Several sources add several stanzas: any one of
 * them will decrypt. An identity file here is a mistake (the backup host needs no private key).
 */
export async function protectorsFromFlags(
  flags: EncryptionFlags,
  env: NodeJS.ProcessEnv = process.env,
  scryptParams: ScryptParams = DEFAULT_SCRYPT,
): Promise<KeyProtector[]> {
  // Refused outright, before any secret is read: alone it would otherwise give an unencrypted backup.
  if (flags.identityFile?.length) {
    throw new UsageError(
      '--identity-file is for decrypting; encrypt to its public recipient with --recipient',
      'Run "dbbackup keygen" on the restore host and pass the printed age1… recipient to the backup.',
    );
  }
  const opts = { insecure: flags.insecureKeyFile };
  const protectors: KeyProtector[] = [];
  if (flags.encryptionKeyFile)
    protectors.push(keyProtector(await loadKeyFile(flags.encryptionKeyFile, opts)));
  if (flags.passphraseFile)
    protectors.push(
      await passphraseProtector(await loadPassphraseFile(flags.passphraseFile, opts), scryptParams),
    );
  for (const key of await loadRecipients(flags.recipient ?? [], flags.recipientsFile ?? []))
    protectors.push(recipientProtector(key));
  const envNamed = flags.encryptionKeyEnv !== undefined;
  if (envNamed || (flags.encrypt && protectors.length === 0)) {
    const name = flags.encryptionKeyEnv ?? DEFAULT_KEY_ENV;
    const key = loadKeyFromEnv(name, env);
    if (key) protectors.push(keyProtector(key));
    else if (envNamed || protectors.length === 0) {
      throw new EncryptionKeyError(`Encryption was requested but ${name} is not set`, {
        hint: 'Give --encryption-key-file, --passphrase-file or --recipient, or export a key (dbbackup keygen --symmetric).',
      });
    }
  }
  return protectors;
}

/**
 * The unlockers for reading an encrypted backup, from every source given. The environment key is
 * used when set (DBBACKUP_ENCRYPTION_KEY, or the variable named by --encryption-key-env).
 */
export async function unlockersFromFlags(
  flags: EncryptionFlags,
  env: NodeJS.ProcessEnv = process.env,
): Promise<KeyUnlocker[]> {
  const opts = { insecure: flags.insecureKeyFile };
  const unlockers: KeyUnlocker[] = [];
  if (flags.encryptionKeyFile)
    unlockers.push(
      keyUnlocker(await loadKeyFile(flags.encryptionKeyFile, opts), `key in ${flags.encryptionKeyFile}`),
    );
  const envName = flags.encryptionKeyEnv ?? DEFAULT_KEY_ENV;
  const envKey = loadKeyFromEnv(envName, env);
  if (envKey) unlockers.push(keyUnlocker(envKey, `key from ${envName}`));
  if (flags.passphraseFile)
    unlockers.push(
      passphraseUnlocker(
        await loadPassphraseFile(flags.passphraseFile, opts),
        `passphrase in ${flags.passphraseFile}`,
      ),
    );
  for (const file of flags.identityFile ?? [])
    unlockers.push(identityUnlocker(await loadIdentityFile(file, opts), `identity in ${file}`));
  return unlockers;
}
