import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMyDatabase, dropMyDatabase, myExec } from '../harness/mysql.js';
import { createPgDatabase, dropPgDatabase, pgExec } from '../harness/pg.js';
import { parseTextfile, valueOf } from '../harness/prom.js';
import { myServer, pgServer } from '../harness/servers.js';
import { startWebhookServer, type WebhookServer } from '../harness/webhook-server.js';
import { cli, expectExit, listDir, removeDir, tempDir, uniqueName } from './util.js';

/**
 * The "done when": one config file with two profiles; `dbbackup --profile prod backup
 * cluster` as cron runs it; the result in history, in a Prometheus metric and in a chat message.
 */

const pgDb = uniqueName('ops_pg');
const myDb = uniqueName('ops_my');
let work: string;
let hooks: WebhookServer;
let config: string;
let audit: string;
let metrics: string;
let prodDir: string;
let mariaDir: string;

beforeAll(async () => {
  await createPgDatabase(pgDb);
  await pgExec(pgDb, 'CREATE TABLE t (id int primary key); INSERT INTO t SELECT generate_series(1, 100);');
  await createMyDatabase(myDb);
  await myExec(myDb, 'CREATE TABLE t (id int primary key); INSERT INTO t VALUES (1), (2), (3);');
  hooks = await startWebhookServer();
  work = await tempDir('dbb-ops-');
  prodDir = path.join(work, 'prod');
  mariaDir = path.join(work, 'maria');
  audit = path.join(work, 'state', 'audit.jsonl');
  metrics = path.join(work, 'textfile', 'dbbackup.prom');
  const pg = pgServer();
  const my = myServer();
  config = path.join(work, 'config.toml');
  await writeFile(
    config,
    `# Two profiles, shared logs, metrics and notifications.
[log]
audit_file = "${audit}"

[metrics]
file = "${metrics}"

[notify]
url = ["${hooks.url('/slack/T000/B000/XXXX')}"]
format = "slack"
on = "always"
timeout = 10

[profiles.prod.connection]
host = "${pg.host}"
port = ${pg.port}
user = "${pg.user}"

[profiles.prod.storage]
backup_dir = "${prodDir}"

[profiles.maria.connection]
engine = "mariadb"
host = "${my.host}"
port = ${my.port}
user = "${my.user}"

[profiles.maria.storage]
backup_dir = "${mariaDir}"
`,
    { mode: 0o600 },
  );
  await Promise.all([prodDir, mariaDir].map((d) => mkdir(d)));
});

afterAll(async () => {
  await hooks.close();
  await dropPgDatabase(pgDb);
  await dropMyDatabase(myDb);
  await removeDir(work);
});

const run = (args: string[], env: Record<string, string | undefined> = {}) =>
  cli(['--config', config, ...args], { env, timeoutMs: 300_000 });

describe('one configuration file, two profiles', () => {
  it('--profile prod backup cluster (as cron runs it): stored, in history, in the metrics and in a chat message', async () => {
    const r = await run(['-q', '--profile', 'prod', 'backup', 'cluster', '--include-database', pgDb]);
    expectExit(r, 0);
    // Cron mails what a job prints: -q prints nothing on success.
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('');
    const [cluster] = (await listDir(prodDir)).filter((n) => n.startsWith('cluster_'));
    expect(cluster).toBeDefined();

    const history = await run(['history', '--json']);
    expectExit(history, 0);
    const [last] = JSON.parse(history.stdout) as Array<Record<string, unknown>>;
    expect(last).toMatchObject({
      command: 'backup cluster',
      outcome: 'success',
      exitCode: 0,
      profile: 'prod',
      database: '*',
      backup: cluster,
      destination: prodDir,
      server: `${pgServer().host}:${pgServer().port}`,
    });
    const text = await run(['history']);
    expect(text.stdout).toMatch(/backup cluster\s+\*\s+success/);

    const series = parseTextfile(await readFile(metrics, 'utf8'));
    const labels = { kind: 'backup_cluster', database: '*' };
    expect(valueOf(series, 'dbbackup_last_status', labels)).toBe(1);
    const success = valueOf(series, 'dbbackup_last_success_timestamp_seconds', labels) ?? 0;
    expect(Math.abs(success - Date.parse(String(last?.time)) / 1000)).toBeLessThan(1);
    expect(valueOf(series, 'dbbackup_last_success_bytes', labels)).toBeGreaterThan(0);

    const [message] = await hooks.waitFor('/slack/', 1);
    const body = message?.body as { text: string };
    expect(body.text).toContain('backup cluster succeeded on');
    expect(body.text).toContain(cluster);
  });

  it('--profile maria backs up the other server into its own directory; both share the metrics file', async () => {
    const r = await run(['--profile', 'maria', 'backup', 'single', myDb]);
    expectExit(r, 0);
    expect((await listDir(mariaDir)).some((n) => n.startsWith(`${myDb}_`))).toBe(true);
    const series = parseTextfile(await readFile(metrics, 'utf8'));
    expect(valueOf(series, 'dbbackup_last_status', { kind: 'backup_single', database: myDb })).toBe(1);
    expect(valueOf(series, 'dbbackup_last_status', { kind: 'backup_cluster', database: '*' })).toBe(1);
  });

  it("--profile prod cleanup (as cron runs it) prunes the profile's backup directory; without a configured one it is a usage error", async () => {
    const before = (await listDir(prodDir)).filter(
      (n) => n.endsWith('.meta.json') || n.startsWith('cluster_'),
    );
    const plan = await cli([
      '--config',
      config,
      '--profile',
      'prod',
      'cleanup',
      '--keep-last',
      '1000',
      '--dry-run',
    ]);
    expectExit(plan, 0);
    expect(plan.stdout).toContain(`Location: ${prodDir} (the configured backup directory)`);
    expect(plan.stdout).toContain(`Retention plan for ${prodDir}`);
    expect(
      (await listDir(prodDir)).filter((n) => n.endsWith('.meta.json') || n.startsWith('cluster_')),
    ).toEqual(before);
    const bare = await cli(['cleanup', '--keep-last', '1'], { env: { DBBACKUP_BACKUP_DIR: undefined } });
    expect(bare.code).toBe(2);
    expect(bare.stderr).toContain('Give a location (or --archive), or configure a backup directory');
  });

  it('a failure: exit code, history --failed, metric status 0 (last success kept), and a message with the error and hint', async () => {
    const ok = await run(['--profile', 'prod', 'backup', 'single', pgDb]);
    expectExit(ok, 0);
    const before = parseTextfile(await readFile(metrics, 'utf8'));
    const labels = { kind: 'backup_single', database: pgDb };
    const success = valueOf(before, 'dbbackup_last_success_timestamp_seconds', labels);
    expect(success).toBeDefined();

    // The server is gone (PGHOST, from the environment, beats the profile's host).
    const r = await run(['--profile', 'prod', 'backup', 'single', pgDb], {
      PGHOST: path.join(work, 'no-socket-here'),
    });
    expect(r.code).not.toBe(0);
    const failed = await run(['history', '--failed', '--json', '--limit', '1']);
    const [record] = JSON.parse(failed.stdout) as Array<{
      outcome: string;
      error: string;
      hint: string;
      database: string;
    }>;
    expect(record).toMatchObject({ outcome: 'failure', database: pgDb });
    expect(record?.error).toMatch(/Cannot connect to PostgreSQL/);
    expect(record?.hint).toBeTruthy();

    const after = parseTextfile(await readFile(metrics, 'utf8'));
    expect(valueOf(after, 'dbbackup_last_status', labels)).toBe(0);
    expect(valueOf(after, 'dbbackup_last_success_timestamp_seconds', labels)).toBe(success);

    const messages = await hooks.waitFor('/slack/', 4);
    const text = (messages[messages.length - 1]?.body as { text: string }).text;
    expect(text).toContain(`backup single FAILED on`);
    expect(text).toContain('Cannot connect to PostgreSQL');
    expect(text).toContain(`*Hint:* ${record?.hint}`);
    expect(text).toContain(pgDb);
  });

  it('config show names each value’s source; a flag beats the profile', async () => {
    const r = await run(['--profile', 'prod', '--port', '1', 'config', 'show', '--json']);
    expectExit(r, 0);
    const shown = JSON.parse(r.stdout) as {
      profile: string;
      settings: Array<{ key: string; value: unknown; from: string }>;
    };
    const get = (key: string) => shown.settings.find((s) => s.key === key);
    expect(shown.profile).toBe('prod');
    expect(get('connection.host')).toMatchObject({
      value: pgServer().host,
      from: `profile prod (${config}:15)`,
    });
    expect(get('connection.port')).toMatchObject({ value: '1', from: 'flag --port' });
    expect(get('notify.url')).toMatchObject({
      value: [`http://127.0.0.1:${new URL(hooks.url('/')).port}/…`],
    });
    expect(r.stdout).not.toContain('XXXX');
  });

  it('a file readable by others that holds a webhook URL is refused, as key files are', async () => {
    const copy = path.join(work, 'open.toml');
    await writeFile(copy, await readFile(config, 'utf8'));
    await chmod(copy, 0o644);
    const r = await cli(['--config', copy, '--profile', 'prod', 'list', 'backups']);
    expectExit(r, 2);
    expect(r.stderr).toContain(`${copy} is readable by other users (mode 0644) and holds notify.url`);
    expect(r.stderr).toContain(`chmod 600 ${copy}`);
  });

  it('config validate: one line per problem with its key path and line, exit 2', async () => {
    const bad = path.join(work, 'bad.toml');
    await writeFile(bad, '[profiles.prod.connection]\nhots = "db"\nport = "5432"\n', { mode: 0o600 });
    const r = await cli(['config', 'validate', bad]);
    expectExit(r, 2);
    expect(r.stdout.trim().split('\n')).toEqual([
      `${bad}:2: profiles.prod.connection.hots: unknown key (did you mean host?)`,
      `${bad}:3: profiles.prod.connection.port: expected a whole number from 1 to 65535, got "5432"`,
    ]);
    // A command refuses the same file, naming the same lines.
    const refused = await cli(['--config', bad, 'list', 'backups']);
    expectExit(refused, 2);
    expect(refused.stderr).toContain(`${bad}:2: profiles.prod.connection.hots`);
  });

  it('config init writes a private template that validates and is never overwritten silently', async () => {
    const file = path.join(work, 'new', 'config.toml');
    const r = await cli(['--config', file, 'config', 'init', '--profile', 'nightly']);
    expectExit(r, 0);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expectExit(await cli(['config', 'validate', file]), 0);
    const again = await cli(['--config', file, 'config', 'init']);
    expectExit(again, 2);
    expect(again.stderr).toContain('already exists');
  });
});

describe("the reference tool's ./.dbbackup.conf", () => {
  it('is read from the working directory with its keys mapped; what is not used is warned about', async () => {
    const dir = await tempDir('dbb-ref-');
    try {
      const backups = path.join(dir, 'backups');
      const pg = pgServer();
      await mkdir(backups);
      await writeFile(
        path.join(dir, '.dbbackup.conf'),
        `# dbbackup configuration\n[database]\ntype = postgres\nhost = ${pg.host}\nport = ${pg.port}\nuser = ${pg.user}\n\n[backup]\nbackup_dir = ${backups}\ncompression = 6\njobs = 8\n\n[performance]\ncpu_workload = balanced\n\n[cloud]\nbucket = b\n`,
      );
      const r = await cli(['backup', 'single', pgDb], { cwd: dir, timeoutMs: 300_000 });
      expectExit(r, 0);
      expect((await listDir(backups)).some((n) => n.startsWith(`${pgDb}_`) && n.endsWith('.dump.zst'))).toBe(
        true,
      );
      expect(r.stderr).toContain('jobs (line 11: pigz threads');
      expect(r.stderr).toContain('cpu_workload (line 14');
      expect(r.stderr).toContain(
        `${path.join(dir, '.dbbackup.conf')}:17: unknown key [cloud] bucket; ignored`,
      );
      // Flags still win over it.
      const elsewhere = path.join(dir, 'elsewhere');
      const flagged = await cli(['--backup-dir', elsewhere, 'backup', 'single', pgDb], {
        cwd: dir,
        timeoutMs: 300_000,
      });
      expectExit(flagged, 0);
      expect((await listDir(elsewhere)).some((n) => n.startsWith(`${pgDb}_`))).toBe(true);
      expect(
        (await listDir(backups)).filter((n) => n.startsWith(`${pgDb}_`) && n.endsWith('.zst')),
      ).toHaveLength(1);
    } finally {
      await removeDir(dir);
    }
  });
});
