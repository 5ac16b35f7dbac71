/**
 * What verification concludes about a stored backup. Its own module so that the verifiers of each
 * kind of backup (base.ts, physical.ts) can name it without importing verify.ts, which imports them.
 */
export type BackupState = 'valid' | 'incomplete' | 'corrupt';
