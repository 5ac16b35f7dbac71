import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { myServer, pgServer } from './servers.js';

/**
 * Backups exactly as the reference tool (the Go dbbackup, see shared/reference/reference-system.md
 * §2.2, §2.3, §3) makes them, made with the same real programs and arguments: pg_dumpall, pg_dump,
 * mysqldump, gzip and tar. Used to prove that its users can restore what they have.
 */

/** `YYYYMMDD_HHMMSS`, the reference's timestamp. */
export function referenceTimestamp(date = new Date()): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${date.getFullYear()}${p(date.getMonth() + 1)}${p(date.getDate())}_${p(date.getHours())}${p(date.getMinutes())}${p(date.getSeconds())}`;
}

function pgBin(tool: string): string {
  return path.join(pgServer().binDir, tool);
}

/** The reference passes -h/-p/-U (and --no-password) when the host is not "localhost". */
function pgConnArgs(): string[] {
  const s = pgServer();
  return ['-h', s.host, '-p', String(s.port), '--no-password', '-U', s.user];
}

function pgEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of ['PGHOST', 'PGPORT', 'PGUSER', 'PGDATABASE', 'PGPASSWORD']) delete env[k];
  return env;
}

function finished(child: ChildProcess, what: string, stderr: () => string): Promise<void> {
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`${what} exited ${code}: ${stderr()}`)),
    );
  });
}

/** Runs a program (no shell); its stdout goes to `outFile` when given. */
async function runTool(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  outFile?: string,
): Promise<void> {
  const out = outFile ? await open(outFile, 'w') : undefined;
  try {
    const child = spawn(file, args, { env, stdio: ['ignore', out ? out.fd : 'ignore', 'pipe'] });
    let err = '';
    child.stderr?.setEncoding('utf8').on('data', (s: string) => (err += s));
    await finished(child, `${path.basename(file)} ${args.join(' ')}`, () => err);
  } finally {
    await out?.close();
  }
}

/** `producer | gzip -c > outFile`, joined by a kernel pipe as the reference's shell pipelines are. */
async function pipeThroughGzip(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  outFile: string,
  gzipArgs: string[] = ['-c'],
): Promise<void> {
  const out = await open(outFile, 'w');
  try {
    const producer = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const gzip = spawn('gzip', gzipArgs, { stdio: [producer.stdout, out.fd, 'pipe'] });
    // gzip owns the pipe now; the parent's end must be closed, or 'close' never comes for the producer.
    producer.stdout?.destroy();
    let perr = '';
    let gerr = '';
    producer.stderr?.setEncoding('utf8').on('data', (s: string) => (perr += s));
    gzip.stderr?.setEncoding('utf8').on('data', (s: string) => (gerr += s));
    await Promise.all([
      finished(producer, path.basename(file), () => perr),
      finished(gzip, 'gzip', () => gerr),
    ]);
  } finally {
    await out.close();
  }
}

async function sha256File(file: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(file))
    .digest('hex');
}

/** The reference's BackupMetadata sidecar (§3.2) and `.sha256` (§3.1) for a single backup. */
async function writeSingleSidecars(
  file: string,
  database: string,
  type: 'postgres' | 'mariadb',
  compression: string,
): Promise<void> {
  const size = (await stat(file)).size;
  const sha256 = await sha256File(file);
  const s = type === 'postgres' ? pgServer() : myServer();
  await writeFile(`${file}.sha256`, `${sha256}  ${file}\n`);
  const meta = {
    version: '2.0',
    timestamp: new Date().toISOString(),
    database,
    database_type: type,
    database_version: 'unknown',
    host: s.host,
    port: s.port,
    user: s.user,
    backup_file: file,
    size_bytes: size,
    sha256,
    compression,
    backup_type: 'single',
    duration_seconds: 0.01,
    encrypted: false,
  };
  await writeFile(`${file}.meta.json`, JSON.stringify(meta, null, 2));
}

/** `backup single <db>` of the reference on PostgreSQL: `db_<db>_<ts>.dump` (custom, zlib 6) + sidecars. */
export async function referencePgSingle(
  dir: string,
  database: string,
  ts = referenceTimestamp(),
): Promise<string> {
  const file = path.join(dir, `db_${database}_${ts}.dump`);
  await runTool(
    pgBin('pg_dump'),
    [...pgConnArgs(), '--format=custom', '--compress=6', '--blobs', `--dbname=${database}`, `--file=${file}`],
    pgEnv(),
  );
  await writeSingleSidecars(file, database, 'postgres', 'gzip-6');
  return file;
}

/** `backup single <db>` of the reference on MySQL/MariaDB: `mysqldump … <db> | gzip -6` → `db_<db>_<ts>.sql.gz`. */
export async function referenceMySingle(
  dir: string,
  database: string,
  ts = referenceTimestamp(),
): Promise<string> {
  const s = myServer();
  const file = path.join(dir, `db_${database}_${ts}.sql.gz`);
  await pipeThroughGzip(
    'mysqldump',
    [
      '-h',
      s.host,
      '-P',
      String(s.port),
      '-u',
      s.user,
      '--skip-ssl',
      '--single-transaction',
      '--routines',
      '--triggers',
      '--events',
      database,
    ],
    { ...process.env, MYSQL_PWD: undefined },
    file,
    ['-6', '-c'],
  );
  await writeSingleSidecars(file, database, 'mariadb', 'gzip-6');
  return file;
}

export interface ReferenceClusterOptions {
  /** Databases dumped with pg_dump --format=custom into dumps/<db>.dump. */
  custom: string[];
  /** Databases dumped as the reference dumps those over 5 GiB: plain SQL through gzip into dumps/<db>.sql.gz. */
  plain?: string[];
  ts?: string;
  /** Runs between pg_dumpall and the first pg_dump, as changes made while the reference's backup ran do. */
  afterGlobals?: () => Promise<void>;
}

/**
 * `backup cluster` of the reference (§2.3): in `<dir>/.cluster_<ts>/`, `pg_dumpall --globals-only`
 * into globals.sql and one dump per database into dumps/; then `tar -czf cluster_<ts>.tar.gz -C
 * <temp> .`, the temporary directory removed, and `cluster_<ts>.tar.gz.meta.json` written (§3.3).
 */
export async function referencePgCluster(dir: string, o: ReferenceClusterOptions): Promise<string> {
  const ts = o.ts ?? referenceTimestamp();
  const temp = path.join(dir, `.cluster_${ts}`);
  await mkdir(path.join(temp, 'dumps'), { recursive: true });
  const env = pgEnv();
  await runTool(
    pgBin('pg_dumpall'),
    ['--globals-only', ...pgConnArgs()],
    env,
    path.join(temp, 'globals.sql'),
  );
  await o.afterGlobals?.();
  for (const db of o.custom) {
    await runTool(
      pgBin('pg_dump'),
      [
        ...pgConnArgs(),
        '--format=custom',
        '--compress=6',
        '--blobs',
        `--dbname=${db}`,
        `--file=${path.join(temp, 'dumps', `${db}.dump`)}`,
      ],
      env,
    );
  }
  for (const db of o.plain ?? []) {
    await pipeThroughGzip(
      pgBin('pg_dump'),
      [...pgConnArgs(), '--format=plain', '--blobs', `--dbname=${db}`],
      env,
      path.join(temp, 'dumps', `${db}.sql.gz`),
    );
  }
  const archive = path.join(dir, `cluster_${ts}.tar.gz`);
  await runTool('tar', ['-czf', archive, '-C', temp, '.'], process.env);
  await rm(temp, { recursive: true, force: true });
  const s = pgServer();
  const all = [...o.custom, ...(o.plain ?? [])];
  const meta = {
    version: '2.0',
    timestamp: new Date().toISOString(),
    cluster_name: `${s.host}:${s.port}`,
    database_type: 'postgres',
    host: s.host,
    port: s.port,
    databases: all.map((database) => ({
      version: '2.0',
      timestamp: new Date().toISOString(),
      database,
      database_type: 'postgres',
      database_version: 'PostgreSQL',
      host: '',
      port: 0,
      user: '',
      backup_file: '',
      size_bytes: 0,
      sha256: '',
      compression: '',
      backup_type: '',
      duration_seconds: 0,
      encrypted: false,
    })),
    total_size_bytes: (await stat(archive)).size,
    duration_seconds: 0.5,
    extra_info: {
      database_count: String(all.length),
      success_count: String(all.length),
      failure_count: '0',
      archive_sha256: await sha256File(archive),
      database_version: 'PostgreSQL',
    },
  };
  await writeFile(`${archive}.meta.json`, JSON.stringify(meta, null, 2));
  return archive;
}
