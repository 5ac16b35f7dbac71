import { z } from 'zod';

/**
 * The `encryption` field of a backup's metadata (see describeEncryption): how to open the backup,
 * never key material. For src/catalog/metadata.ts: `encryption: encryptionDescription.nullable()`.
 */
export const protectionDescription = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('key'), keyId: z.string().regex(/^[0-9a-f]{16}$/) }),
  z.object({
    kind: z.literal('passphrase'),
    kdf: z.literal('scrypt'),
    logN: z.number().int(),
    r: z.number().int(),
    p: z.number().int(),
  }),
  z.object({ kind: z.literal('recipient'), recipient: z.string().startsWith('age1') }),
  z.object({ kind: z.literal('unknown'), type: z.number().int() }),
]);

export const encryptionDescription = z.object({
  format: z.literal('dbbackup-enc'),
  formatVersion: z.number().int(),
  cipher: z.enum(['aes-256-gcm', 'chacha20-poly1305']),
  chunkSize: z.number().int().positive(),
  protections: z.array(protectionDescription).min(1),
});

export type ProtectionDescription = z.infer<typeof protectionDescription>;
export type EncryptionDescription = z.infer<typeof encryptionDescription>;
