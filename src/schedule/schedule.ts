import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { DbBackupError, errnoCode, errorMessage, UsageError } from '../errors.js';
import { parseCron, toOnCalendar } from './cron.js';

/**
 * `dbbackup schedule`: jobs installed into the system's own scheduler, never a daemon of ours — a
 * systemd service + timer pair where systemd runs the machine, else a crontab entry. Every file
 * and line carries a marker with the job's definition, so `list` and `remove` read back exactly
 * what `add` wrote and touch nothing else. Where things go can be changed (tests, packaging):
 * DBBACKUP_SYSTEMD_UNIT_DIR, DBBACKUP_SYSTEMCTL (a program, or `none`), DBBACKUP_CRONTAB_FILE (a
 * file used instead of the `crontab` program).
 */

const run = promisify(execFile);

export type Method = 'systemd' | 'cron';

export interface Job {
  name: string;
  cron: string;
  /** dbbackup's arguments. */
  args: string[];
  method: Method;
  /** The user it runs as (systemd system units: User=). */
  user?: string;
}

/** What is written, for --dry-run and for the install itself. */
export interface Rendered {
  files: Array<{ path: string; content: string }>;
  /** The crontab after the change (cron). */
  crontab?: string;
  /** Commands run afterwards (systemctl). */
  commands: string[][];
}

const MARKER = 'dbbackup-schedule:';

export function checkName(name: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/.test(name))
    throw new UsageError(
      `Invalid schedule name "${name}"`,
      'Use letters, digits, "-" and "_" (at most 64), starting with a letter or digit: it names the unit files.',
    );
}

/** Flags whose value is a secret: never written into a unit file or a crontab. */
const SECRET_FLAGS = ['--password', '--cloud-secret-key', '--notify'];

export function checkArgs(args: readonly string[]): void {
  if (!args.length)
    throw new UsageError(
      'No dbbackup command to schedule',
      'Put it after "--": schedule add NAME --cron "0 2 * * *" -- backup cluster',
    );
  const secret = args.find((a) => SECRET_FLAGS.some((f) => a === f || a.startsWith(`${f}=`)));
  if (secret)
    throw new UsageError(
      `${secret.split('=')[0]} would be written in clear into the scheduler's files`,
      'Keep secrets in a configuration profile (--profile), a --password-file or the environment of the job, not in its command line.',
    );
}

/** systemd unit dir: DBBACKUP_SYSTEMD_UNIT_DIR, else /etc/systemd/system for root, ~/.config/systemd/user otherwise. */
export function unitDir(env: NodeJS.ProcessEnv = process.env): { dir: string; user: boolean } {
  const root = process.getuid?.() === 0;
  if (env.DBBACKUP_SYSTEMD_UNIT_DIR) return { dir: env.DBBACKUP_SYSTEMD_UNIT_DIR, user: !root };
  return root
    ? { dir: '/etc/systemd/system', user: false }
    : {
        dir: path.join(env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config'), 'systemd', 'user'),
        user: true,
      };
}

/** systemd runs this machine (sd_booted: /run/systemd/system exists). */
export function defaultMethod(): Method {
  return existsSync('/run/systemd/system') ? 'systemd' : 'cron';
}

/** The command the job runs: this Node and this dbbackup, by absolute path (cron and systemd have no PATH of ours). */
export function jobCommand(args: readonly string[]): string[] {
  return [process.execPath, path.resolve(process.argv[1] ?? 'dbbackup'), ...args];
}

function unitQuote(arg: string): string {
  // systemd: specifiers (%) and variables ($) doubled, then C-style quoting.
  const escaped = arg.replace(/%/g, '%%').replace(/\$/g, '$$$$').replace(/\\/g, '\\\\').replace(/"/g, '\\"');
  return `"${escaped}"`;
}

function definition(job: Job): string {
  return JSON.stringify({
    v: 1,
    name: job.name,
    cron: job.cron,
    args: job.args,
    ...(job.user ? { user: job.user } : {}),
  });
}

export function unitNames(name: string): { service: string; timer: string } {
  return { service: `dbbackup-${name}.service`, timer: `dbbackup-${name}.timer` };
}

export function renderUnits(
  job: Job,
  env: NodeJS.ProcessEnv = process.env,
): { service: string; timer: string } {
  const names = unitNames(job.name);
  const spec = parseCron(job.cron);
  const header = [
    `# Written by dbbackup (schedule "${job.name}", cron "${job.cron}"): remove with "dbbackup schedule remove ${job.name}".`,
    `# ${MARKER} ${definition(job)}`,
  ];
  const service = [
    ...header,
    '[Unit]',
    `Description=dbbackup schedule ${job.name}: dbbackup ${job.args.join(' ')}`.replace(/%/g, '%%'),
    'Wants=network-online.target',
    'After=network-online.target',
    '',
    '[Service]',
    'Type=oneshot',
    ...(job.user ? [`User=${job.user}`] : []),
    `Environment=${unitQuote(`DBBACKUP_SCHEDULE=${job.name}`)} ${unitQuote(`PATH=${env.PATH ?? '/usr/bin:/bin'}`)}`,
    `ExecStart=${jobCommand(job.args).map(unitQuote).join(' ')}`,
    // SIGTERM to dbbackup alone: it stops its children and cleans up (15 s at most), then the rest.
    'KillMode=mixed',
    'TimeoutStopSec=30',
    'Nice=10',
    '',
  ].join('\n');
  const timer = [
    ...header,
    '[Unit]',
    `Description=dbbackup schedule ${job.name} (${job.cron})`.replace(/%/g, '%%'),
    '',
    '[Timer]',
    ...toOnCalendar(spec).map((c) => `OnCalendar=${c}`),
    // A run missed while the machine was off happens when it comes back.
    'Persistent=true',
    `Unit=${names.service}`,
    '',
    '[Install]',
    'WantedBy=timers.target',
    '',
  ].join('\n');
  return { service, timer };
}

function shellQuote(arg: string): string {
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** The job's two crontab lines: its marker, then the entry (% escaped: cron turns it into a newline). */
export function renderCronLines(job: Job, env: NodeJS.ProcessEnv = process.env): string[] {
  const spec = parseCron(job.cron);
  const command = [
    `DBBACKUP_SCHEDULE=${shellQuote(job.name)}`,
    `PATH=${shellQuote(env.PATH ?? '/usr/bin:/bin')}`,
    ...jobCommand(job.args).map(shellQuote),
  ].join(' ');
  return [`# ${MARKER} ${definition(job)}`, `${spec.expression} ${command.replace(/%/g, '\\%')}`];
}

function parseDefinition(line: string, method: Method): Job | undefined {
  const at = line.indexOf(MARKER);
  if (at < 0) return undefined;
  try {
    const d = JSON.parse(line.slice(at + MARKER.length)) as Partial<Job> & { v?: number };
    if (d.v !== 1 || typeof d.name !== 'string' || typeof d.cron !== 'string' || !Array.isArray(d.args))
      return undefined;
    return {
      name: d.name,
      cron: d.cron,
      args: d.args.map(String),
      method,
      ...(d.user ? { user: d.user } : {}),
    };
  } catch {
    return undefined;
  }
}

/** The jobs in a crontab, and the crontab without one of them. */
export function cronJobs(text: string): Job[] {
  return text
    .split('\n')
    .map((l) => parseDefinition(l, 'cron'))
    .filter((j): j is Job => j !== undefined);
}

export function withoutCronJob(
  text: string,
  name: string,
): { text: string; removed: boolean; edited: boolean } {
  const lines = text.split('\n');
  const out: string[] = [];
  let removed = false;
  let edited = false;
  for (let i = 0; i < lines.length; i++) {
    const job = parseDefinition(lines[i] ?? '', 'cron');
    if (job?.name !== name) {
      out.push(lines[i] ?? '');
      continue;
    }
    removed = true;
    const next = lines[i + 1] ?? '';
    const expected = renderCronLines(job)[1] ?? '';
    // The entry below the marker goes with it when it is ours (as written, or edited but still ours).
    if (next === expected) i++;
    else if (next.includes('DBBACKUP_SCHEDULE=')) {
      edited = true;
      i++;
    }
  }
  return { text: out.join('\n'), removed, edited };
}

async function readCrontab(env: NodeJS.ProcessEnv, user?: string): Promise<string> {
  if (env.DBBACKUP_CRONTAB_FILE)
    return readFile(env.DBBACKUP_CRONTAB_FILE, 'utf8').catch((err: unknown) => {
      if (errnoCode(err) === 'ENOENT') return '';
      throw err;
    });
  try {
    return (await run('crontab', [...(user ? ['-u', user] : []), '-l'])).stdout;
  } catch (err) {
    // "no crontab for user": an empty one.
    if (/no crontab/i.test(String((err as { stderr?: string }).stderr ?? ''))) return '';
    if (errnoCode(err) === 'ENOENT')
      throw new DbBackupError('crontab was not found', {
        hint: 'Install cron (Debian: apt-get install cron), or use --method systemd.',
      });
    throw err;
  }
}

async function writeCrontab(env: NodeJS.ProcessEnv, text: string, user?: string): Promise<void> {
  if (env.DBBACKUP_CRONTAB_FILE) {
    const file = env.DBBACKUP_CRONTAB_FILE;
    await mkdir(path.dirname(file), { recursive: true });
    const temp = `${file}.dbbackup-${process.pid}`;
    await writeFile(temp, text, { mode: 0o600 });
    await rename(temp, file);
    return;
  }
  await new Promise<void>((resolve, reject) => {
    const child = execFile('crontab', [...(user ? ['-u', user] : []), '-'], (err) =>
      err ? reject(err) : resolve(),
    );
    child.stdin?.end(text);
  });
}

function systemctl(env: NodeJS.ProcessEnv): string | undefined {
  const v = env.DBBACKUP_SYSTEMCTL ?? 'systemctl';
  return v === 'none' ? undefined : v;
}

/** What `add` would write and run; nothing is changed. */
export async function planAdd(job: Job, env: NodeJS.ProcessEnv = process.env): Promise<Rendered> {
  checkName(job.name);
  checkArgs(job.args);
  parseCron(job.cron);
  const existing = await listJobs(env);
  if (existing.some((j) => j.name === job.name))
    throw new UsageError(
      `A schedule named "${job.name}" exists already`,
      `Remove it first: dbbackup schedule remove ${job.name}`,
    );
  if (job.method === 'systemd') {
    const { dir, user } = unitDir(env);
    const names = unitNames(job.name);
    const units = renderUnits(job, env);
    const scope = user ? ['--user'] : [];
    return {
      files: [
        { path: path.join(dir, names.service), content: units.service },
        { path: path.join(dir, names.timer), content: units.timer },
      ],
      commands: [
        ['systemctl', ...scope, 'daemon-reload'],
        ['systemctl', ...scope, 'enable', '--now', names.timer],
      ],
    };
  }
  const current = await readCrontab(env, job.user);
  const lines = renderCronLines(job, env);
  const base = current === '' || current.endsWith('\n') ? current : `${current}\n`;
  return { files: [], crontab: `${base}${lines.join('\n')}\n`, commands: [] };
}

export async function applyPlan(
  plan: Rendered,
  job: Job,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string[]> {
  const notes: string[] = [];
  for (const f of plan.files) {
    await mkdir(path.dirname(f.path), { recursive: true });
    await writeFile(f.path, f.content, { mode: 0o644 });
  }
  if (plan.crontab !== undefined) await writeCrontab(env, plan.crontab, job.user);
  notes.push(...(await runSystemctl(plan.commands, env)));
  return notes;
}

async function runSystemctl(commands: string[][], env: NodeJS.ProcessEnv): Promise<string[]> {
  const program = systemctl(env);
  if (!commands.length) return [];
  if (!program) return [`not run (DBBACKUP_SYSTEMCTL=none): ${commands.map((c) => c.join(' ')).join('; ')}`];
  for (const c of commands) {
    try {
      await run(program, c.slice(1));
    } catch (err) {
      throw new DbBackupError(`${c.join(' ')} failed: ${errorMessage(err).split('\n')[0] ?? ''}`, {
        hint: 'The unit files are written; run the command yourself once systemd is reachable (or use --method cron).',
      });
    }
  }
  return [];
}

/** Every job this command installed: the timers in the unit directory, the entries of the crontab. */
export async function listJobs(env: NodeJS.ProcessEnv = process.env): Promise<Job[]> {
  const jobs: Job[] = [];
  const { dir } = unitDir(env);
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!/^dbbackup-.+\.timer$/.test(name)) continue;
    const text = await readFile(path.join(dir, name), 'utf8').catch(() => '');
    const job = text
      .split('\n')
      .map((l) => parseDefinition(l, 'systemd'))
      .find(Boolean);
    if (job) jobs.push(job);
  }
  const crontab = await readCrontab(env).catch(() => '');
  jobs.push(...cronJobs(crontab));
  return jobs.sort((a, b) => a.name.localeCompare(b.name));
}

/** What `remove` would delete and run. */
export async function planRemove(
  name: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ job: Job; plan: Rendered & { delete: string[] } }> {
  checkName(name);
  const job = (await listJobs(env)).find((j) => j.name === name);
  if (!job) throw new UsageError(`No schedule named "${name}"`, 'dbbackup schedule list shows them.');
  if (job.method === 'systemd') {
    const { dir, user } = unitDir(env);
    const names = unitNames(name);
    const scope = user ? ['--user'] : [];
    return {
      job,
      plan: {
        files: [],
        delete: [path.join(dir, names.timer), path.join(dir, names.service)],
        commands: [
          ['systemctl', ...scope, 'disable', '--now', names.timer],
          ['systemctl', ...scope, 'daemon-reload'],
        ],
      },
    };
  }
  const current = await readCrontab(env, job.user);
  const { text } = withoutCronJob(current, name);
  return { job, plan: { files: [], delete: [], crontab: text, commands: [] } };
}

export async function applyRemove(
  plan: Rendered & { delete: string[] },
  job: Job,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string[]> {
  const notes: string[] = [];
  const [disable, reload] = plan.commands;
  if (disable)
    notes.push(
      ...(await runSystemctl([disable], env).catch((err: unknown) => [`warning: ${errorMessage(err)}`])),
    );
  for (const file of plan.delete) {
    // Only a file that carries our marker (the service, written with the timer) is removed.
    const text = await readFile(file, 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    if (!text.includes(MARKER)) {
      notes.push(`warning: ${file} was not written by dbbackup: left alone`);
      continue;
    }
    await unlink(file);
  }
  if (reload) notes.push(...(await runSystemctl([reload], env)));
  if (plan.crontab !== undefined) await writeCrontab(env, plan.crontab, job.user);
  return notes;
}
