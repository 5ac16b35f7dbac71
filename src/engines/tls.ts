import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ConnectionOptions as TlsOptions } from 'node:tls';
import { errnoCode, UsageError } from '../errors.js';

/**
 * libpq's sslmode values, which dbbackup uses for both engines (`--ssl-mode`, `PGSSLMODE`): the
 * drivers' own connections and the dump/restore tools must agree, or a backup could query the server
 * over TLS and dump it in the clear (or fail against a server that requires TLS).
 */
export const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

export function parseSslMode(value: string | undefined, source: string): SslMode | undefined {
  if (value === undefined || value === '') return undefined;
  const mode = value.toLowerCase();
  if ((SSL_MODES as readonly string[]).includes(mode)) return mode as SslMode;
  throw new UsageError(`Invalid ${source} "${value}"`, `Use one of: ${SSL_MODES.join(', ')}.`);
}

/** PEM contents: a CA to verify the server against, and a client certificate with its key. */
export interface TlsFiles {
  ca?: string;
  cert?: string;
  key?: string;
}

/** One connection attempt: plain (false), or TLS checking nothing, the certificate chain, or the host name too. */
export type TlsAttempt = false | { verify: 'none' | 'chain' | 'full'; files: TlsFiles };

/**
 * The attempts a driver makes, in order, as libpq orders them: `prefer` tries TLS and falls back to
 * plain, `allow` the reverse; `require` encrypts without checking the certificate unless a CA is
 * known (then, as in libpq, it checks the chain like `verify-ca`); `verify-ca` checks the chain,
 * `verify-full` the host name too. A Unix socket is never encrypted (libpq ignores sslmode there).
 */
export function tlsAttempts(mode: SslMode, files: TlsFiles, socket: boolean): TlsAttempt[] {
  if (socket) return [false];
  const tls = (verify: 'none' | 'chain' | 'full'): TlsAttempt => ({ verify, files });
  switch (mode) {
    case 'disable':
      return [false];
    case 'allow':
      return [false, tls('none')];
    case 'prefer':
      return [tls('none'), false];
    case 'require':
      return [tls(files.ca ? 'chain' : 'none')];
    case 'verify-ca':
      return [tls('chain')];
    case 'verify-full':
      return [tls('full')];
  }
}

/** Node's TLS options for an attempt (node-postgres takes them as they are). */
export function nodeTls(attempt: TlsAttempt): false | TlsOptions {
  if (!attempt) return false;
  const { files, verify } = attempt;
  return {
    ...(files.ca ? { ca: files.ca } : {}),
    ...(files.cert && files.key ? { cert: files.cert, key: files.key } : {}),
    rejectUnauthorized: verify !== 'none',
    // Without a CA file Node's own CAs are used; the host name is checked only for verify-full.
    ...(verify === 'full' ? {} : { checkServerIdentity: () => undefined }),
  };
}

/** Per list of attempts (one per engine), the index of the attempt that last connected. */
const worked = new WeakMap<TlsAttempt[], number>();

const NETWORK_ERRORS = ['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EAI_AGAIN'];

/**
 * Connects with each attempt in turn, as libpq does: when an attempt fails for any reason but an
 * unreachable server (which the next attempt would meet too), the next is tried; the last error is
 * the one reported.
 */
export async function connectWithTls<T>(
  attempts: TlsAttempt[],
  connect: (tls: TlsAttempt) => Promise<T>,
): Promise<T> {
  let last: unknown;
  // The attempt that worked last time on this list is tried first: with the default `prefer` and a
  // server without TLS, every connection would otherwise cost two (a tiny backup opens six).
  const first = worked.get(attempts) ?? 0;
  for (const attempt of [...attempts.slice(first), ...attempts.slice(0, first)]) {
    try {
      const connected = await connect(attempt);
      worked.set(attempts, attempts.indexOf(attempt));
      return connected;
    } catch (err) {
      last = err;
      const code = errnoCode(err);
      if (code && NETWORK_ERRORS.includes(code)) break;
      if (/timeout/i.test(String((err as Error).message))) break;
    }
  }
  throw last;
}

export function readPem(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`Cannot read the ${what} ${file}: ${(err as Error).message}`, 'Check the path.');
  }
}

/**
 * PostgreSQL TLS from libpq's variables (what the tools read too): PGSSLMODE (default prefer),
 * PGSSLROOTCERT (default ~/.postgresql/root.crt when present; `system`: the system's CAs), PGSSLCERT
 * and PGSSLKEY (default ~/.postgresql/postgresql.crt and .key when present).
 */
export function pgTls(env: NodeJS.ProcessEnv, socket: boolean): TlsAttempt[] {
  const mode = parseSslMode(env.PGSSLMODE, 'PGSSLMODE') ?? 'prefer';
  if (mode === 'disable' || socket) return [false];
  const dir = path.join(os.homedir(), '.postgresql');
  const pick = (given: string | undefined, fallback: string): string | undefined =>
    given ?? (existsSync(path.join(dir, fallback)) ? path.join(dir, fallback) : undefined);
  const root = pick(env.PGSSLROOTCERT, 'root.crt');
  const cert = pick(env.PGSSLCERT, 'postgresql.crt');
  const key = pick(env.PGSSLKEY, 'postgresql.key');
  const files: TlsFiles = {
    ca: root && root !== 'system' ? readPem(root, 'root certificate (PGSSLROOTCERT)') : undefined,
    cert: cert && key ? readPem(cert, 'client certificate (PGSSLCERT)') : undefined,
    key: cert && key ? readPem(key, 'client key (PGSSLKEY)') : undefined,
  };
  return tlsAttempts(mode, files, socket);
}

/** The hint for a connection that failed over TLS settings rather than credentials or reachability. */
export const TLS_HINT =
  "Check --ssl-mode (PGSSLMODE) against the server's TLS settings, and --ssl-ca for a server certificate signed by your own CA.";

export function isTlsFailure(message: string): boolean {
  return /\bSSL\b|\bTLS\b|certificate|no encryption|secure connection/i.test(message);
}
