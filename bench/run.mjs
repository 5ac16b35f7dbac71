#!/usr/bin/env node
// npm run bench — dbbackup against the plain tools on the same data, in the same run, interleaved.
// See `node bench/run.mjs --help` and bench/README.md.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { GROUPS } from './lib/cases.mjs';
import { BENCH_DIR, HELP, parseConfig, REPO_DIR, UsageError } from './lib/config.mjs';
import {
  myClientArgs,
  myDbSize,
  myDrop,
  mysql,
  myRecreate,
  pgDbSize,
  pgDrop,
  pgFingerprint,
  pgRecreate,
  probeMy,
  probePg,
  psql,
} from './lib/db.mjs';
import { buildMyFixtures, buildPgFixtures } from './lib/fixtures.mjs';
import { GNU_TIME } from './lib/measure.mjs';
import { evaluateTargets, machineFacts, renderMarkdown } from './lib/report.mjs';
import { renderSaved } from './lib/render.mjs';
import { groupCases, Runner } from './lib/runner.mjs';
import { log, mkdirp, q, rmrf, sh, which } from './lib/util.mjs';

async function main() {
  let cfg;
  try {
    cfg = parseConfig();
  } catch (e) {
    if (e instanceof UsageError) {
      log(`bench: ${e.message}\n\n${HELP}`);
      return 2;
    }
    throw e;
  }
  if (cfg.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (cfg.render) {
    const argv = process.argv.slice(2);
    const i = argv.indexOf('--render');
    const rest =
      i >= 0 ? [...argv.slice(0, i), ...argv.slice(i + 2)] : argv.filter((a) => !a.startsWith('--render='));
    return renderSaved(
      path.resolve(cfg.render),
      rest.filter((a) => !a.startsWith('--scale')),
    );
  }

  const c = {
    cfg,
    db: cfg.db,
    fixtures: cfg.fixtures,
    work: cfg.work,
    tmp: path.join(cfg.work, 'tmp'),
    pg: null,
    my: null,
  };

  // ---- select groups and cases
  const only = cfg.only ? new RegExp(cfg.only) : null;
  const selected = [];
  const skippedGroups = [];
  const todoCases = [];
  for (const g of GROUPS) {
    if (g.todo) {
      skippedGroups.push({ group: g, reason: 'todo' });
      continue;
    }
    const all = groupCases(g, c);
    for (const k of all) if (k.todo) todoCases.push({ group: g, kase: k });
    const cases = all.filter(
      (k) => !k.todo && (!cfg.smoke || k.smoke) && (!only || only.test(g.id) || only.test(`${g.id}/${k.id}`)),
    );
    if (cases.length) selected.push({ group: g, cases });
    else skippedGroups.push({ group: g, reason: 'filtered' });
  }
  if (cfg.list) {
    for (const { group, cases } of selected) {
      console.log(`${group.id}: ${group.title}`);
      for (const k of cases) console.log(`  ${k.id.padEnd(20)} ${k.label}${k.smoke ? '  [smoke]' : ''}`);
    }
    for (const { group, reason } of skippedGroups)
      console.log(`${group.id}: ${reason === 'todo' ? 'TODO — ' + group.todo : '(not selected)'}`);
    for (const { group, kase } of todoCases) console.log(`${group.id}/${kase.id}: TODO — ${kase.todo}`);
    return 0;
  }
  if (selected.length === 0) {
    log(`bench: no case matches --only ${cfg.only}; try --list`);
    return 2;
  }

  // ---- prerequisites
  const engines = new Set(selected.map((s) => s.group.engine));
  const missing = ['bash', 'zstd', 'gzip'].filter((t) => !which(t));
  if (engines.has('pg'))
    missing.push(...['pg_dump', 'pg_restore', 'psql', 'pgbench'].filter((t) => !which(t)));
  if (missing.length) {
    log(
      `bench: missing programs: ${missing.join(', ')} (on Debian: apt-get install postgresql-client mariadb-client zstd pigz)`,
    );
    return 2;
  }
  if (!fs.existsSync(path.join(path.dirname(cfg.dbbackup), '..', 'dist'))) {
    log('bench: dist/ is missing: run `npm run build` first (npm run bench does it)');
    return 2;
  }
  if (!GNU_TIME)
    log('bench: /usr/bin/time not found: CPU from /proc, peak RSS from sampling only (apt-get install time)');

  // ---- servers
  const unreachable = [];
  if (engines.has('pg')) {
    const pg = probePg(cfg.pg);
    if (pg.error)
      unreachable.push(
        `PostgreSQL: ${pg.error}\n  (point elsewhere with --pg-host/--pg-port/--pg-user or PGHOST/PGPORT/PGUSER)`,
      );
    else {
      c.pg = pg;
      if (!pg.superuser)
        log(`bench: note: PostgreSQL user ${pg.user} is not a superuser; fixtures and restores may fail`);
    }
  }
  if (engines.has('my')) {
    const my = probeMy(cfg.my);
    if (my.error)
      unreachable.push(
        `MariaDB/MySQL: ${my.error}\n  (point elsewhere with --my-host/--my-port/--my-user; MYSQL_PWD for a password)`,
      );
    else c.my = my;
  }
  if (unreachable.length) {
    log(
      `bench: no reachable database server for the selected cases:\n  ${unreachable.join('\n  ')}\n` +
        '  To run only one engine: --only pg-  or  --only my-',
    );
    return 2;
  }
  if (c.pg)
    log(
      `PostgreSQL ${c.pg.version} at ${c.pg.host}:${c.pg.port} as ${c.pg.user}${c.pg.serverPids.length ? '' : ' (remote: no server CPU column)'}`,
    );
  if (c.my)
    log(`MariaDB/MySQL ${c.my.version} at ${c.my.host} as ${c.my.user} (${c.my.dump}, ${c.my.client})`);
  if (c.my) c.myConn = myClientArgs(c.my).map(q).join(' ');

  mkdirp(c.work);
  rmrf(c.tmp);
  mkdirp(c.tmp);
  // Run a private copy of the built CLI, so that a rebuild of dist/ during the benchmark (another shell,
  // a watcher) cannot change the code under test half-way. BENCH_SNAPSHOT=0 runs bin/ in place.
  if (process.env.BENCH_SNAPSHOT !== '0' && !process.env.DBBACKUP) snapshotCli(c);
  const started = new Date();

  // ---- fixtures
  const need = new Set(selected.flatMap((s) => s.group.fixtures));
  const fixturesBuilt = [];
  try {
    if (c.pg) fixturesBuilt.push(...buildPgFixtures(c.pg, cfg, need));
    if (c.my) fixturesBuilt.push(...buildMyFixtures(c.my, cfg, need));
  } catch (e) {
    log(`bench: building a fixture failed: ${e.message}`);
    return 1;
  }

  // ---- restore helpers (untimed preparation and checks)
  const pgCount = (db) =>
    psql(
      c.pg,
      db,
      "select (select count(*) from pgbench_accounts) || ' accounts, ' || (select count(*) from docs) || ' docs'",
    );
  let pgExpected = null;
  c.pgPrepRestore = () => {
    pgRecreate(c.pg, cfg.db.pgRestore);
    psql(c.pg, 'postgres', 'CHECKPOINT');
  };
  c.pgCheckRestore = () => {
    pgExpected ??= pgCount(cfg.db.pg);
    const got = pgCount(cfg.db.pgRestore);
    return got === pgExpected ? null : `restored ${got}, source has ${pgExpected}`;
  };
  const myCount = (db) =>
    mysql(
      c.my,
      `select concat((select count(*) from \`${db}\`.orders), ' orders, ', (select count(*) from \`${db}\`.attachments), ' attachments')`,
    );
  let myExpected = null;
  c.myPrepRestore = () => myRecreate(c.my, cfg.db.myRestore);
  c.myCheckRestore = () => {
    myExpected ??= myCount(cfg.db.my);
    const got = myCount(cfg.db.myRestore);
    return got === myExpected ? null : `restored ${got}, source has ${myExpected}`;
  };
  // the small restores (tiny, Pagila-like): any target database, checked against its source with a
  // fingerprint of every table's and materialized view's row count and of the objects in it
  const copyExpected = new Map();
  c.pgPrepTarget = (db) => {
    pgRecreate(c.pg, db);
    psql(c.pg, 'postgres', 'CHECKPOINT');
  };
  c.pgCheckCopy = (source, target) => {
    if (!copyExpected.has(source)) copyExpected.set(source, pgFingerprint(c.pg, source));
    const want = copyExpected.get(source);
    const got = pgFingerprint(c.pg, target);
    if (got === want) return null;
    const w = new Set(want.split(' '));
    const g = new Set(got.split(' '));
    const diff = (a, b) => [...a].filter((x) => !b.has(x)).join(' ') || '–';
    return `${target} differs from ${source}: it has ${diff(g, w)} where the source has ${diff(w, g)}`;
  };
  const myItems = (db) => mysql(c.my, `select count(*) from \`${db}\`.items`);
  c.myPrepTarget = (db) => myRecreate(c.my, db);
  c.myCheckItems = (source, target) => {
    if (!copyExpected.has(source)) copyExpected.set(source, myItems(source));
    const got = myItems(target);
    return got === copyExpected.get(source)
      ? null
      : `restored ${got} items, source has ${copyExpected.get(source)}`;
  };
  // encryption: one symmetric key (0600) made by the CLI under test, untimed, the first time a case needs it
  let keyFile = null;
  c.keyFile = () => {
    if (keyFile) return keyFile;
    const f = path.join(c.work, 'bench.key');
    rmrf(f);
    sh(process.execPath, [cfg.dbbackup, 'keygen', '--symmetric', '--output', f]);
    keyFile = f;
    return f;
  };
  // cluster: copies of the fixtures (CREATE DATABASE … TEMPLATE, untimed), so that the cluster restores can
  // drop and recreate them without touching the fixtures themselves
  c.clusterSources = cfg.db.cluster;
  c.clusterDbs = Object.keys(cfg.db.cluster);
  c.pgCloneCluster = () => {
    for (const [copy, source] of Object.entries(c.clusterSources)) {
      pgDrop(c.pg, copy);
      psql(c.pg, 'postgres', `CREATE DATABASE "${copy}" TEMPLATE "${source}" STRATEGY FILE_COPY`);
    }
  };
  c.pgDropCluster = () => {
    for (const d of c.clusterDbs) pgDrop(c.pg, d);
    psql(c.pg, 'postgres', 'CHECKPOINT');
  };
  const clusterFingerprint = (db, source) =>
    source === cfg.db.pg
      ? pgCount(db)
      : psql(
          c.pg,
          db,
          "select count(*) || ' tables, ' || (select count(*) from pg_attribute a join pg_class k on k.oid = a.attrelid join pg_namespace n on n.oid = k.relnamespace where n.nspname = 'public' and a.attnum > 0) || ' columns' from pg_tables where schemaname = 'public'",
        ) + (source === cfg.db.pgTiny ? `, ${psql(c.pg, db, 'select count(*) from items')} items` : '');
  const clusterExpected = new Map();
  c.pgCheckCluster = () => {
    for (const [copy, source] of Object.entries(c.clusterSources)) {
      if (!clusterExpected.has(source)) clusterExpected.set(source, clusterFingerprint(source, source));
      let got;
      try {
        got = clusterFingerprint(copy, source);
      } catch (e) {
        return `${copy}: ${e.message.split('\n').slice(-1)[0]}`;
      }
      if (got !== clusterExpected.get(source))
        return `${copy}: restored ${got}, source ${source} has ${clusterExpected.get(source)}`;
    }
    return null;
  };
  const sizes = new Map();
  c.dbSize = (db) => {
    if (!sizes.has(db)) sizes.set(db, db.startsWith('bench_my') ? myDbSize(c.my, db) : pgDbSize(c.pg, db));
    return sizes.get(db);
  };

  // ---- run
  const runner = new Runner(c, GROUPS);
  const groupResults = [];
  try {
    for (const { group, cases } of selected) {
      const results = await runner.runGroup(group, cases);
      groupResults.push({ group, results });
      if (group.db) for (const d of [group.db(c)].flat()) c.dbSize(d);
    }
  } finally {
    await runner.tearDown();
  }
  const finished = new Date();

  // ---- report
  const dbSizes = [...sizes.entries()].filter(([d]) => !d.startsWith('bench_pg_scale'));
  const targets = evaluateTargets(groupResults);
  const facts = machineFacts(c);
  const md = renderMarkdown({
    c,
    groupResults,
    skippedGroups,
    todoCases,
    targets,
    facts,
    started,
    finished,
    failures: runner.failures,
    fixturesBuilt,
    dbSizes,
  });
  const resultsDir = mkdirp(path.join(BENCH_DIR, 'results'));
  // an --only run is named after its start time too, so that several on one day are all kept
  const partial = cfg.only ? `-partial-${started.toISOString().slice(11, 16).replace(':', '')}` : '';
  const base = `${started.toISOString().slice(0, 10)}-${cfg.scale}${cfg.smoke ? '-smoke' : ''}${partial}`;
  fs.writeFileSync(path.join(resultsDir, `${base}.md`), md + '\n');
  // latest.md follows the real runs (every case, full scale); a smoke run only proves that everything
  // works, and an --only run measured part of the table
  const isLatest = !cfg.smoke && !cfg.only && cfg.scale === 'full';
  if (isLatest) fs.writeFileSync(path.join(resultsDir, 'latest.md'), md + '\n');
  fs.writeFileSync(
    path.join(resultsDir, `${base}.json`),
    JSON.stringify(
      {
        started,
        finished,
        scale: cfg.scale,
        smoke: cfg.smoke,
        only: cfg.only ?? null,
        runs: cfg.runs,
        warmup: cfg.warmup,
        runsSmall: cfg.runsSmall,
        fixtures: cfg.fixtures,
        fixturesBuilt,
        dbSizes: Object.fromEntries(sizes),
        distHash: c.distHash ?? null,
        machine: Object.fromEntries(facts),
        targets,
        failures: runner.failures,
        groups: groupResults.map(({ group, results }) => ({
          id: group.id,
          title: group.title,
          cases: results.map((r) => ({
            id: r.id,
            label: r.label,
            command: r.command,
            failed: r.failed,
            skipped: r.skipped,
            runs: r.runs,
          })),
        })),
      },
      null,
      1,
    ) + '\n',
  );
  process.stdout.write(md + '\n');
  log(
    `\nwritten: bench/results/${base}.md, bench/results/${base}.json${isLatest ? ', bench/results/latest.md' : ''}`,
  );

  // ---- cleanup
  if (!cfg.keep) {
    rmrf(path.join(c.work, 'out'));
    rmrf(path.join(c.work, 'artifacts'));
    rmrf(c.tmp);
    try {
      // Only the restore targets of the groups that ran: another run (an --only of other groups) may be
      // restoring into the others right now.
      const ran = (re) => selected.some((s) => re.test(s.group.id));
      const pgTargets = [
        [/^pg-restore$/, cfg.db.pgRestore],
        [/^pg-small-restore$/, cfg.db.pgTinyRestore],
        [/^pg-pagila-restore$/, cfg.db.pgPagilaRestore],
      ];
      const myTargets = [
        [/^my-(restore|physical-restore)$/, cfg.db.myRestore],
        [/^my-small-restore$/, cfg.db.myTinyRestore],
      ];
      if (c.pg) for (const [re, d] of pgTargets) if (ran(re)) pgDrop(c.pg, d);
      if (c.pg && ran(/^pg-cluster/)) for (const d of c.clusterDbs) pgDrop(c.pg, d);
      if (c.my) for (const [re, d] of myTargets) if (ran(re)) myDrop(c.my, d);
    } catch (e) {
      log(`bench: cleanup: ${e.message}`);
    }
  }
  if (runner.failures.length) {
    log(`bench: ${runner.failures.length} failure(s):`);
    for (const f of runner.failures) log(`  ${f.where}: ${f.message.split('\n')[0]}`);
    return 1;
  }
  return 0;
}

function snapshotCli(c) {
  const snap = path.join(c.work, 'snapshot');
  rmrf(snap);
  mkdirp(snap);
  fs.cpSync(path.join(REPO_DIR, 'bin'), path.join(snap, 'bin'), { recursive: true });
  fs.cpSync(path.join(REPO_DIR, 'dist'), path.join(snap, 'dist'), {
    recursive: true,
    filter: (src) => !src.endsWith('.map'),
  });
  fs.copyFileSync(path.join(REPO_DIR, 'package.json'), path.join(snap, 'package.json'));
  fs.symlinkSync(path.join(REPO_DIR, 'node_modules'), path.join(snap, 'node_modules'));
  const hash = createHash('sha256');
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else hash.update(e.name).update(fs.readFileSync(p));
    }
  };
  walk(path.join(snap, 'dist'));
  c.cfg.dbbackup = path.join(snap, 'bin', 'dbbackup.js');
  c.distHash = hash.digest('hex').slice(0, 12);
  log(
    `dbbackup under test: a copy of bin/ and dist/ in ${path.relative(REPO_DIR, snap)} (dist sha256 ${c.distHash}…)`,
  );
}

main().then(
  (code) => process.exit(code),
  (e) => {
    log(`bench: ${e.stack ?? e}`);
    process.exit(1);
  },
);
