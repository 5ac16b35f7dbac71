import { spawn } from 'node:child_process';
import { chown, lchown, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { userInfo } from 'node:os';
import { errorMessage, UsageError } from '../errors.js';

/**
 * The server's OS user (the owner of its data directory): archive_command and restore_command run
 * as that user, so what they need must be reachable by it, and what dbbackup creates for them
 * must belong to it.
 */
export interface OsUser {
  uid: number;
  gid: number;
  name: string;
}

export const isRoot = (): boolean => process.getuid?.() === 0;

/**
 * Gives what dbbackup created for the server to its OS user. Only root can (and needs to): run as
 * that user, the file is already its own. `link: true` changes a symbolic link, not its target.
 */
export async function giveTo(file: string, user: OsUser, o: { link?: boolean } = {}): Promise<void> {
  if (!isRoot() || user.uid === 0) return;
  await (o.link ? lchown : chown)(file, user.uid, user.gid);
}

/** The user (and primary group) owning `file`, with the name /etc/passwd gives it. */
export async function ownerOf(file: string): Promise<OsUser> {
  const s = await stat(file);
  return { uid: s.uid, gid: s.gid, name: (await userName(s.uid)) ?? String(s.uid) };
}

async function passwd(): Promise<string[][]> {
  const text = await readFile('/etc/passwd', 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(':'));
}

async function userName(uid: number): Promise<string | undefined> {
  return (await passwd()).find((f) => Number(f[2]) === uid)?.[0];
}

/** A user by name, or undefined when the system has none. */
export async function userByName(name: string): Promise<OsUser | undefined> {
  const f = (await passwd()).find((x) => x[0] === name);
  return f ? { uid: Number(f[2]), gid: Number(f[3]), name } : undefined;
}

export function currentUser(): OsUser {
  return { uid: process.getuid?.() ?? -1, gid: process.getgid?.() ?? -1, name: '' };
}

/** Whether this process can act as `user`: it is that user, or root. */
export function canActAs(user: OsUser): boolean {
  return isRoot() || process.getuid?.() === user.uid;
}

function allowed(s: { mode: number; uid: number; gid: number }, user: OsUser, bit: number): boolean {
  if (user.uid === 0) return true;
  if (s.uid === user.uid) return Boolean(s.mode & (bit << 6));
  if (s.gid === user.gid) return Boolean(s.mode & (bit << 3));
  return Boolean(s.mode & bit);
}

/**
 * Why `user` could not use `file` (`need`: read, execute, write), checking every directory on the
 * way; empty when nothing stands in the way. Supplementary groups are not considered, so this
 * errs on the side of reporting.
 */
export async function accessProblems(
  user: OsUser,
  file: string,
  need: 'read' | 'execute' | 'write' | 'read-dir',
): Promise<string[]> {
  const abs = path.resolve(file);
  const problems: string[] = [];
  const parts = abs.split(path.sep).filter(Boolean);
  let dir: string = path.sep;
  for (const part of parts.slice(0, -1)) {
    dir = path.join(dir, part);
    const s = await stat(dir).catch(() => undefined);
    if (!s) return [`${dir} does not exist`];
    if (!allowed(s, user, 1))
      problems.push(
        `${user.name} cannot enter ${dir} (mode ${(s.mode & 0o777).toString(8)}, owner uid ${s.uid})`,
      );
  }
  const s = await stat(abs).catch((err: unknown) => {
    problems.push(`${abs}: ${errorMessage(err)}`);
    return undefined;
  });
  if (!s) return problems;
  const bits = need === 'execute' ? 1 : need === 'write' ? 2 : need === 'read-dir' ? 5 : 4;
  const checks = need === 'read-dir' ? [4, 1] : [bits];
  for (const bit of checks)
    if (!allowed(s, user, bit))
      problems.push(
        `${user.name} cannot ${bit === 1 ? (s.isDirectory() ? 'enter' : 'execute') : bit === 2 ? 'write' : 'read'} ${abs} (mode ${(s.mode & 0o777).toString(8).padStart(4, '0')}, owner uid ${s.uid})`,
      );
  return problems;
}

export interface AsUserResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `file args` as `user` (this process's own user, or any user when root) with `env`, the
 * way the server would; never through a shell.
 */
export function runAsUser(
  user: OsUser,
  file: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<AsUserResult> {
  const switchUser = isRoot() && user.uid !== 0;
  return new Promise((resolve) => {
    const child = spawn(file, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: opts.timeoutMs ?? 60_000,
      ...(switchUser ? { uid: user.uid, gid: user.gid } : {}),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', (err) => resolve({ code: 127, stdout, stderr: stderr + errorMessage(err) }));
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }));
  });
}

/**
 * The database server's OS user, owner of a restored data directory: the one named (--os-user),
 * else the engine's usual one (`postgres`, `mysql`) when this runs as root, else this process's user.
 */
export async function serverOsUser(name: string | undefined, usual: string): Promise<OsUser> {
  const wanted = name ?? (isRoot() ? usual : undefined);
  if (!wanted) return { ...currentUser(), name: userInfo().username };
  const user = await userByName(wanted);
  if (!user)
    throw new UsageError(`There is no OS user "${wanted}"`, "Give the server's OS user with --os-user.");
  return user;
}
