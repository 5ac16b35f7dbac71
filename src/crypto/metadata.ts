import type { z } from 'zod';
import { lazySchemas } from '../zod.js';

/** Built on first use (parsing), so that writing metadata loads no zod. */
export const encryptionSchemas = lazySchemas((z) => {
  /**
   * The `encryption` field of a backup's metadata (see describeEncryption): how to open the backup,
   * never key material. For src/catalog/metadata.ts:
   * `encryption: encryptionSchemas().encryptionDescription.nullable()`.
   */
  const protectionDescription = z.discriminatedUnion('kind', [
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

  const encryptionDescription = z.object({
    format: z.literal('dbbackup-enc'),
    formatVersion: z.number().int(),
    cipher: z.enum(['aes-256-gcm', 'chacha20-poly1305']),
    chunkSize: z.number().int().positive(),
    protections: z.array(protectionDescription).min(1),
  });
  return { protectionDescription, encryptionDescription };
});
type Schemas = ReturnType<typeof encryptionSchemas>;

export type ProtectionDescription = z.infer<Schemas['protectionDescription']>;
export type EncryptionDescription = z.infer<Schemas['encryptionDescription']>;
