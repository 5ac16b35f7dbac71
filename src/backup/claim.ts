import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { IntegrityError, SafetyError } from '../errors.js';
import { META_SUFFIX, SHA256_SUFFIX } from '../catalog/naming.js';
import { TEMP_MARKER } from '../storage/local/local.js';
import { putBuffer, type Storage } from '../storage/storage.js';
import { cleanupRequests } from '../storage/transport.js';

/**
 * Two backups of one database started in the same second want the same name. A conditional write
 * (If-None-Match: *, ifGenerationMatch: 0, link()) would stop the second one, but only after its
 * dump was streamed, and some servers ignore the condition (both S3 emulators, the GCS emulator):
 * both runs then reported "Backup complete" and one backup was silently replaced.
 *
 * So a run first claims its name: it writes a small claim object of its own beside the name and
 * lists the claims for that name. A run that sees only its own claim owns the name: any other run
 * wrote its claim after this listing, so its own listing shows this claim and it moves on. A run
 * that sees another claim withdraws and tries the next name (`…-1`, `…-2`). Listings are strongly
 * consistent on every supported store, so at most one run owns a name; the owner keeps its claim
 * until the backup is finished or abandoned. A claim left by a killed run only makes later runs
 * skip that name. Claims carry the temporary-file marker, so listings and --prune-incomplete know
 * them as leftovers of an interrupted write.
 */

/** The object-metadata key holding the run's token: proof that an object is this run's. */
export const TOKEN_METADATA = 'dbbackup-token';

const CLAIM_SUFFIX = '.claim';

export interface ClaimedName {
  key: string;
  /** Random, unique to this run; stored in the data object's metadata. */
  token: string;
  /** Remove the claims (also after an interrupt). Never throws. */
  release(): Promise<void>;
}

function split(key: string): { dir: string; base: string } {
  const slash = key.lastIndexOf('/');
  return { dir: key.slice(0, slash + 1), base: key.slice(slash + 1) };
}

/** `.dbbackup-tmp-<token>-<name>.claim`, beside the name. */
export function claimKey(key: string, token: string): string {
  const { dir, base } = split(key);
  return `${dir}${TEMP_MARKER}${token}-${base}${CLAIM_SUFFIX}`;
}

/** Tokens of every claim on `key` in one store. */
async function claimsOn(storage: Storage, key: string): Promise<string[]> {
  const { dir, base } = split(key);
  const prefix = `${dir}${TEMP_MARKER}`;
  const suffix = `-${base}${CLAIM_SUFFIX}`;
  const tokens: string[] = [];
  for await (const o of storage.list(prefix)) {
    const name = o.key.slice(prefix.length);
    if (!o.key.startsWith(prefix) || name.includes('/') || !name.endsWith(suffix)) continue;
    // (A claim still being written to a directory has a temporary name of its own: not yet one.)
    const token = name.slice(0, -suffix.length);
    if (/^[0-9a-f]{12}$/.test(token)) tokens.push(token);
  }
  return tokens;
}

/** Whether anything of a backup called `key` is already in any store: data or a sidecar. */
async function taken(storages: Storage[], key: string): Promise<boolean> {
  // The name itself first, so a store that refuses access is reported for the backup's own name.
  if ((await Promise.all(storages.map((st) => st.stat(key)))).some(Boolean)) return true;
  const sidecars = await Promise.all(
    storages.flatMap((st) => [key + META_SUFFIX, key + SHA256_SUFFIX].map((k) => st.stat(k))),
  );
  return sidecars.some(Boolean);
}

async function withdraw(storages: Storage[], key: string, token: string): Promise<void> {
  await cleanupRequests(() =>
    Promise.all(storages.map((st) => st.delete(claimKey(key, token)).catch(() => undefined))),
  );
}

/**
 * The first free name (`nameFor(0)`, then `nameFor(1)`…) that this run now owns in every store;
 * see the module comment.
 */
export async function claimFreeName(
  storages: Storage[],
  nameFor: (attempt: number) => string,
  what: string,
): Promise<ClaimedName> {
  const token = randomBytes(6).toString('hex');
  for (let attempt = 0; attempt < 100; attempt++) {
    const key = nameFor(attempt);
    if (await taken(storages, key)) continue;
    await Promise.all(storages.map((st) => putBuffer(st, claimKey(key, token), `${token}\n`)));
    let owned = false;
    try {
      const claims = await Promise.all(storages.map((st) => claimsOn(st, key)));
      owned = claims.every((tokens) => tokens.length === 1 && tokens[0] === token);
      // A backup finished under this name between the first check and the claim.
      if (owned && (await taken(storages, key))) owned = false;
    } finally {
      if (!owned) await withdraw(storages, key, token);
    }
    if (owned) return { key, token, release: () => withdraw(storages, key, token) };
    // Runs that claimed together all withdraw; a random pause keeps them from meeting again.
    await sleep(Math.random() * 200);
  }
  throw new SafetyError(`Could not find a free backup name for ${what}`, {
    hint: 'A hundred names of this second are taken or claimed; run the backup again.',
  });
}

/**
 * Proof that the object under `key` is this run's: its metadata carries the run's token. A local
 * directory needs none (the file was linked into place, which fails rather than replace one).
 */
export async function ownsObject(storage: Storage, key: string, token: string): Promise<boolean> {
  if (storage.localPath) return true;
  const info = await storage.stat(key);
  return info?.metadata?.[TOKEN_METADATA] === token;
}

/** Fails unless every store holds this run's object under `key`. */
export async function proveStored(storages: Storage[], key: string, token: string): Promise<void> {
  for (const storage of storages) {
    if (await ownsObject(storage, key, token)) continue;
    throw new IntegrityError(
      `${storage.location.replace(/\/$/, '')}/${key} was replaced by another writer during the upload: this backup is not stored there`,
      {
        hint: 'Something else wrote the same name at the same moment (the server ignores conditional writes); it was left alone. Run the backup again.',
      },
    );
  }
}

/**
 * Remove a failed backup's objects (metadata first, so nothing ever looks valid), but only from
 * stores where the data is provably this run's: a name another writer took is theirs, sidecars
 * included. Also after an interrupt (clean-up requests may still reach the store); never throws.
 */
export async function discardOwned(stored: Storage[], key: string, token: string): Promise<void> {
  await cleanupRequests(async () => {
    for (const storage of stored) {
      if (!(await ownsObject(storage, key, token).catch(() => false))) continue;
      await storage.delete(key + META_SUFFIX).catch(() => undefined);
      await storage.delete(key).catch(() => undefined);
      await storage.delete(key + SHA256_SUFFIX).catch(() => undefined);
    }
  });
}
