/** The encryption module's public surface: streams, header format, keys, rekeying. */
export { EncryptionKeyError } from './errors.js';
export {
  CHUNK_SIZE,
  computeHeaderMac,
  encodeHeader,
  FORMAT_VERSION,
  headerLengthOf,
  isEncrypted,
  MAGIC,
  parseHeader,
  verifyHeaderMac,
  type CipherName,
  type EncryptionHeader,
  type Stanza,
} from './format.js';
export {
  DEFAULT_SCRYPT,
  describeUnlockOptions,
  identityUnlocker,
  keyId,
  keyProtector,
  keyUnlocker,
  passphraseProtector,
  passphraseUnlocker,
  recipientProtector,
  unlockHeader,
  type KeyProtector,
  type KeyUnlocker,
  type ScryptParams,
} from './protectors.js';
export {
  createDecryptStream,
  createEncryptStream,
  decryptPrefix,
  DecryptStream,
  EncryptStream,
  type EncryptOptions,
} from './stream.js';
export * from './keys.js';
export * from './metadata.js';
export { rewrapHeader, RewrapStream, type RewrapOptions } from './rewrap.js';
