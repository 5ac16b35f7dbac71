// Command-line flags and environment → one configuration object.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO_DIR = path.resolve(BENCH_DIR, '..');

/** Fixture sizes per scale. Every field can be overridden by an environment variable (see HELP). */
export const SCALES = {
  full: {
    pgScale: 50, // pgbench -i -s
    docsMB: 200, // varied text/jsonb/bytea table in bench_pg
    manyTables: 2000,
    pagilaRentals: 50_000, // rows of bench_pg_pagila's rental and payment tables (Pagila: 16k each, ~6 MB)
    myMB: 500, // MariaDB bench_my, approximate InnoDB size
    scaling: [5, 20, 50], // pgbench scales of the scaling run
    suffix: '',
    quietWait: 3,
  },
  small: {
    pgScale: 2,
    docsMB: 10,
    manyTables: 200,
    pagilaRentals: 5_000,
    myMB: 20,
    scaling: [1, 2, 4],
    suffix: '_small',
    quietWait: 0,
  },
};

export const HELP = `Usage: node bench/run.mjs [options]      (npm run bench / npm run bench:smoke)

Benchmarks dbbackup against the plain tools (pg_dump, pg_restore, psql, mysqldump, mariadb, zstd,
gzip, pigz) on the same fixtures, in the same run, interleaved round by round.

Options (environment variable in brackets):
  --scale small|full      fixture sizes [BENCH_SCALE]; default full
  --runs N                counted runs per case [RUNS]; default 3
  --warmup N              warm-up runs per case, not counted [WARMUP]; default 1
  --runs-small N          counted runs of the small-database groups (pg-small*, pg-pagila*, my-small*)
                          [RUNS_SMALL]; default 5 (RUNS when RUNS < 3)
  --only REGEX            only groups or cases whose id matches, e.g. 'pg-backup|my-' [BENCH_ONLY]
  --smoke                 a quick subset of cases (what npm run bench:smoke runs) [BENCH_SMOKE=1]
  --pg-host H --pg-port P --pg-user U
                          PostgreSQL server [BENCH_PG_HOST, BENCH_PG_PORT, BENCH_PG_USER, else PGHOST,
                          PGPORT, PGUSER]; default: the socket in /var/run/postgresql if present, else
                          127.0.0.1; port 5432; your login name. A password comes from PGPASSWORD or ~/.pgpass.
  --my-host H --my-port P --my-user U
                          MariaDB/MySQL server [BENCH_MY_HOST, BENCH_MY_PORT, BENCH_MY_USER]; default
                          localhost (the local socket), 3306, your login name. H may be a socket path.
                          A password comes from MYSQL_PWD or ~/.my.cnf.
  --work DIR              scratch directory [BENCH_WORK]; default bench/work
  --quiet-wait S          before each run wait up to S s for the machine to go idle [QUIET_WAIT];
                          default 3 (full), 0 (small)
  --rebuild-fixtures      drop and rebuild every fixture [FORCE=1]
  --keep                  keep the scratch outputs, artifacts and restored databases
  --list                  print the case table and exit
  --render FILE.json      re-render the report of a saved run (bench/results/*.json) with the current
                          report code, measuring nothing; writes FILE.md (and latest.md for a full run);
                          --note TEXT adds a remark under the title
  -h, --help              this text

Fixture overrides: BENCH_PG_SCALE, BENCH_DOCS_MB, BENCH_MANY_TABLES, BENCH_PAGILA_RENTALS, BENCH_MY_MB,
BENCH_SCALING (e.g. "5,20,50"), BENCH_PITR_SCALE (pgbench scale of the PITR cluster; 50 full, 2 small).
Other: SAMPLE_MS (RSS sampling interval, default 50), DBBACKUP (path of the CLI to run in place),
BENCH_SNAPSHOT=0 (run bin/dbbackup.js in place instead of a copy of bin/ and dist/ taken at the start).
Exit status: 0 when every command succeeded (missed targets never fail the run), 1 if a command or fixture
failed, 2 on bad usage or when a needed server is unreachable.
`;

export function parseConfig(argv = process.argv.slice(2), env = process.env) {
  const flags = {};
  const bools = new Set(['smoke', 'rebuild-fixtures', 'keep', 'list', 'help']);
  const known = new Set([
    ...bools,
    'scale',
    'runs',
    'warmup',
    'runs-small',
    'only',
    'pg-host',
    'pg-port',
    'pg-user',
    'my-host',
    'my-port',
    'my-user',
    'work',
    'quiet-wait',
    'render',
    'note',
  ]);
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    if (a === '-h') a = '--help';
    if (!a.startsWith('--')) throw new UsageError(`unexpected argument: ${a}`);
    let key = a.slice(2);
    let value;
    const eq = key.indexOf('=');
    if (eq >= 0) {
      value = key.slice(eq + 1);
      key = key.slice(0, eq);
    }
    if (!known.has(key)) throw new UsageError(`unknown option --${key}`);
    if (bools.has(key)) {
      flags[key] = value === undefined ? true : value !== '0' && value !== 'false';
      continue;
    }
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) throw new UsageError(`--${key} needs a value`);
    }
    flags[key] = value;
  }

  const scaleName = flags.scale ?? env.BENCH_SCALE ?? 'full';
  const base = SCALES[scaleName];
  if (!base) throw new UsageError(`--scale must be one of ${Object.keys(SCALES).join(', ')}`);
  const int = (v, name, lo = 0) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < lo) throw new UsageError(`${name} must be an integer ≥ ${lo}: ${v}`);
    return n;
  };
  const num = (v, name) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${name} must be a positive number: ${v}`);
    return n;
  };
  const fixtures = {
    pgScale: env.BENCH_PG_SCALE ? int(env.BENCH_PG_SCALE, 'BENCH_PG_SCALE', 1) : base.pgScale,
    docsMB: env.BENCH_DOCS_MB ? num(env.BENCH_DOCS_MB, 'BENCH_DOCS_MB') : base.docsMB,
    manyTables: env.BENCH_MANY_TABLES ? int(env.BENCH_MANY_TABLES, 'BENCH_MANY_TABLES', 1) : base.manyTables,
    pagilaRentals: env.BENCH_PAGILA_RENTALS
      ? int(env.BENCH_PAGILA_RENTALS, 'BENCH_PAGILA_RENTALS', 100)
      : base.pagilaRentals,
    myMB: env.BENCH_MY_MB ? num(env.BENCH_MY_MB, 'BENCH_MY_MB') : base.myMB,
    scaling: env.BENCH_SCALING
      ? env.BENCH_SCALING.split(',').map((s) => int(s.trim(), 'BENCH_SCALING', 1))
      : base.scaling,
    pitrScale: env.BENCH_PITR_SCALE ? int(env.BENCH_PITR_SCALE, 'BENCH_PITR_SCALE', 1) : null,
  };
  const sfx = base.suffix;
  const runs = int(flags.runs ?? env.RUNS ?? 3, 'RUNS', 1);
  const runsSmall = int(
    flags['runs-small'] ?? env.RUNS_SMALL ?? (runs >= 3 ? Math.max(runs, 5) : runs),
    'RUNS_SMALL',
    1,
  );
  const work = path.resolve(flags.work ?? env.BENCH_WORK ?? path.join(BENCH_DIR, 'work'));

  const pgHost = flags['pg-host'] ?? env.BENCH_PG_HOST ?? env.PGHOST ?? null; // resolved by probing
  const myHost = flags['my-host'] ?? env.BENCH_MY_HOST ?? 'localhost';
  const login = env.USER ?? env.LOGNAME ?? 'root';

  return {
    scale: scaleName,
    fixtures,
    runs,
    warmup: int(flags.warmup ?? env.WARMUP ?? 1, 'WARMUP', 0),
    runsSmall,
    only: flags.only ?? env.BENCH_ONLY ?? null,
    smoke: Boolean(flags.smoke ?? env.BENCH_SMOKE === '1'),
    rebuild: Boolean(flags['rebuild-fixtures'] ?? env.FORCE === '1'),
    keep: Boolean(flags.keep),
    list: Boolean(flags.list),
    render: flags.render ?? null,
    note: flags.note ?? null,
    help: Boolean(flags.help),
    quietWait: Number(flags['quiet-wait'] ?? env.QUIET_WAIT ?? base.quietWait),
    work,
    dbbackup: path.resolve(REPO_DIR, env.DBBACKUP ?? 'bin/dbbackup.js'),
    pg: {
      host: pgHost,
      port: int(flags['pg-port'] ?? env.BENCH_PG_PORT ?? env.PGPORT ?? 5432, 'pg port', 1),
      user: flags['pg-user'] ?? env.BENCH_PG_USER ?? env.PGUSER ?? login,
    },
    my: {
      host: myHost,
      port: int(flags['my-port'] ?? env.BENCH_MY_PORT ?? 3306, 'my port', 1),
      user: flags['my-user'] ?? env.BENCH_MY_USER ?? login,
    },
    db: {
      pg: `bench_pg${sfx}`,
      pgTiny: 'bench_pg_tiny',
      pgMany: `bench_pg_many${sfx}`,
      pgScale: (s) => `bench_pg_scale${s}`,
      pgRestore: 'bench_pg_restore',
      pgTinyRestore: 'bench_pg_tiny_restore',
      pgPagila: `bench_pg_pagila${sfx}`,
      pgPagilaRestore: 'bench_pg_pagila_restore',
      my: `bench_my${sfx}`,
      myRestore: 'bench_my_restore',
      myTiny: 'bench_my_tiny',
      myTinyRestore: 'bench_my_tiny_restore',
      // the cluster groups' databases: copy → the fixture it is copied from (the smoke run, which only
      // proves that every case works, leaves out the copy of bench_pg)
      cluster: {
        ...(flags.smoke || env.BENCH_SMOKE === '1' ? {} : { bench_cl_pg: `bench_pg${sfx}` }),
        bench_cl_tiny: 'bench_pg_tiny',
        bench_cl_many: `bench_pg_many${sfx}`,
      },
    },
  };
}

export class UsageError extends Error {}
