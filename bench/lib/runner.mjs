// Runs the groups of the case table: untimed preparation, interleaved rounds, artifacts, checks.
import fs from 'node:fs';
import path from 'node:path';
import { myDbbackupArgs, pgEnv } from './db.mjs';
import { measure, waitQuiet } from './measure.mjs';
import { log, mkdirp, q, rmrf, sizeOf, which } from './util.mjs';
import { REPO_DIR } from './config.mjs';

const SIDECAR = (name) => name.endsWith('.sha256') || name.endsWith('.meta.json');

export function groupCases(group, c) {
  return typeof group.cases === 'function' ? group.cases(c) : group.cases;
}

/** The argv, environment and display text of one case. */
export function commandOf(group, kase, c, out) {
  if (kase.dbbackup) {
    // group.connection: a group with its own server (the PITR cluster) instead of c.pg / c.my
    const conn = group.connection
      ? group.connection(c)
      : group.engine === 'pg'
        ? { args: ['--host', c.pg.host, '--port', String(c.pg.port), '--user', c.pg.user], env: {} }
        : (() => {
            const m = myDbbackupArgs(c.my);
            return { args: ['--db-type', 'mariadb', ...m.args], env: m.env };
          })();
    // backupDir: false — the case names its own destination (e.g. --cloud only): no --backup-dir, and no
    // DBBACKUP_BACKUP_DIR either, which would make dbbackup write a local copy as well
    const dirArgs = kase.backupDir === false ? [] : ['--backup-dir', out];
    const args = [...conn.args, ...dirArgs, ...kase.dbbackup(c, out)];
    const env = { ...process.env, ...conn.env, ...(kase.env ? kase.env(c) : {}) };
    if (kase.backupDir === false) delete env.DBBACKUP_BACKUP_DIR;
    const envText = Object.entries(kase.env ? kase.env(c) : {})
      .map(([k, v]) => `${k}=${q(v)} `)
      .join('');
    const shown = `${envText}dbbackup ${[...args].map(q).join(' ')}`;
    return { argv: [process.execPath, c.cfg.dbbackup, ...args], env, shown: rel(shown) };
  }
  const cmd = kase.shell(c, out);
  const env = { ...(group.engine === 'pg' ? pgEnv(c.pg) : process.env), ...(kase.env ? kase.env(c) : {}) };
  return { argv: ['bash', '-o', 'pipefail', '-c', cmd], env, shown: rel(cmd) };
}

const rel = (s) => s.split(REPO_DIR + '/').join('');

/** Where an artifact's data lives: the one non-sidecar entry in its directory. */
function artifactPath(work, name) {
  const dir = path.join(work, 'artifacts', name);
  let entries;
  try {
    entries = fs.readdirSync(dir).filter((e) => !SIDECAR(e) && !e.startsWith('.'));
  } catch {
    return null;
  }
  return entries.length === 1 ? path.join(dir, entries[0]) : null;
}

function keepArtifact(work, name, out) {
  const dir = path.join(work, 'artifacts', name);
  rmrf(dir);
  mkdirp(path.dirname(dir));
  fs.renameSync(out, dir);
}

function tail(file, n = 15) {
  try {
    return fs.readFileSync(file, 'utf8').trim().split('\n').slice(-n).join('\n');
  } catch {
    return '';
  }
}

export class Runner {
  constructor(c, allGroups) {
    this.c = c;
    this.allGroups = allGroups;
    this.made = new Set(); // artifacts made in this invocation
    this.failures = [];
    this.setupDone = new Set(); // ids of groups whose setup ran
    this.logDir = mkdirp(path.join(c.work, 'logs'));
    this.outRoot = mkdirp(path.join(c.work, 'out'));
    rmrf(path.join(c.work, 'artifacts'));
    c.art = (name) => {
      const p = artifactPath(c.work, name);
      if (!p) throw new Error(`artifact ${name} is missing`);
      return p;
    };
  }

  /** Make an artifact untimed by running its producer once (when no case made it in this run). */
  async ensureArtifact(name) {
    if (this.made.has(name)) return true;
    for (const g of this.allGroups) {
      if (g.todo) continue;
      for (const k of groupCases(g, this.c)) {
        if (k.produces !== name || k.todo) continue;
        log(`  (untimed) making artifact ${name} with ${g.id}/${k.id}`);
        const out = path.join(this.outRoot, g.id, k.id);
        rmrf(out);
        mkdirp(out);
        if (!(await this.setUp(g))) return false;
        if (g.prep) await g.prep(this.c, k);
        const { argv, env } = commandOf(g, k, this.c, out);
        const logFile = path.join(this.logDir, `${g.id}.${k.id}.log`);
        const r = await measure(argv, { env, logFile, cwd: REPO_DIR });
        if (r.rc !== 0) {
          this.failures.push({
            where: `${g.id}/${k.id} (making ${name})`,
            message: `exit ${r.rc}\n${tail(logFile)}`,
          });
          rmrf(out);
          return false;
        }
        keepArtifact(this.c.work, name, out);
        this.made.add(name);
        return true;
      }
    }
    this.failures.push({ where: name, message: 'no case produces this artifact' });
    return false;
  }

  /** A group's one-time, untimed setup (an emulator, cloned databases…), at most once per invocation. */
  async setUp(group) {
    if (!group.setup || this.setupDone.has(group.id)) return true;
    try {
      log(`  (untimed) setting up ${group.id}`);
      await group.setup(this.c);
      this.setupDone.add(group.id);
      return true;
    } catch (e) {
      this.failures.push({ where: `${group.id} (setup)`, message: e.message });
      return false;
    }
  }

  /** Every set-up group's teardown (stop emulators…); errors are logged, not fatal. */
  async tearDown() {
    for (const g of this.allGroups) {
      if (!this.setupDone.has(g.id) || !g.teardown) continue;
      try {
        await g.teardown(this.c);
      } catch (e) {
        log(`bench: teardown of ${g.id}: ${e.message}`);
      }
    }
    this.setupDone.clear();
  }

  async runGroup(group, cases) {
    const c = this.c;
    const runs = group.runs === 'runsSmall' ? c.cfg.runsSmall : c.cfg.runs;
    const warmup = c.cfg.warmup;
    const rounds = warmup + runs;
    const res = cases.map((k) => ({
      kase: k,
      id: k.id,
      label: k.label,
      runs: [],
      failed: null,
      skipped: null,
    }));
    for (const r of res) {
      const k = r.kase;
      const missing = (k.requires ?? []).filter((p) => !which(p));
      if (missing.length) r.skipped = `${missing.join(', ')} not installed`;
      fs.writeFileSync(path.join(this.logDir, `${group.id}.${k.id}.log`), '');
    }
    for (const r of res) {
      if (r.skipped) continue;
      for (const a of r.kase.needs ?? []) {
        if (!(await this.ensureArtifact(a))) r.failed = `artifact ${a} could not be made`;
      }
    }
    if (!(await this.setUp(group))) {
      for (const r of res) r.failed ??= 'group setup failed';
      return res;
    }
    log(
      `\n== ${group.id}: ${group.title} — ${res.length} cases × (${warmup} warm-up + ${runs} runs), interleaved`,
    );
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? res : [...res].reverse();
      for (const r of order) {
        if (r.failed || r.skipped) continue;
        const k = r.kase;
        const out = path.join(this.outRoot, group.id, k.id);
        rmrf(out);
        mkdirp(out);
        try {
          if (group.prep) await group.prep(c, k);
        } catch (e) {
          r.failed = `preparation failed: ${e.message}`;
          this.failures.push({ where: `${group.id}/${k.id}`, message: r.failed });
          continue;
        }
        const waited = await waitQuiet(c.cfg.quietWait);
        const { argv, env, shown } = commandOf(group, k, c, out);
        r.command = shown;
        const logFile = path.join(this.logDir, `${group.id}.${k.id}.log`);
        fs.appendFileSync(logFile, `\n== round ${round} ${new Date().toISOString()}: ${shown}\n`);
        const server = group.engine === 'pg' ? (c.pg.serverPids ?? []) : (c.my.serverPids ?? []);
        const aux = group.aux ? group.aux(c) : [];
        const m = await measure(argv, { env, logFile, cwd: REPO_DIR, server, aux });
        m.outBytes = group.noOutput
          ? null
          : k.outBytes
            ? await safeAsync(() => k.outBytes(c, out), NaN)
            : sizeOf(out, SIDECAR);
        m.round = round;
        m.warm = round < warmup;
        m.waited = waited;
        const tag = m.warm ? 'warm-up' : `run ${round - warmup + 1}/${runs}`;
        log(
          `  ${(group.id + '/' + k.id).padEnd(30)} ${tag.padEnd(9)} wall ${m.wall.toFixed(2).padStart(7)} s  cpu ${m.cpu.toFixed(2).padStart(6)}  ` +
            `srv ${Number.isFinite(m.serverCpu) ? m.serverCpu.toFixed(2) : '–'}  other ${m.otherCpu.toFixed(2)}  ` +
            `rss ${(m.rssMaxKb / 1024).toFixed(0)}/${(m.rssTreeKb / 1024).toFixed(0)} MB  out ${m.outBytes ? (m.outBytes / 1e6).toFixed(1) + ' MB' : '–'}` +
            (m.rc ? `  EXIT ${m.rc}` : ''),
        );
        if (m.rc !== 0) {
          r.failed = `exit ${m.rc}${m.signal ? ` (${m.signal})` : ''} in ${m.warm ? 'the warm-up' : 'run ' + (round - warmup + 1)}`;
          this.failures.push({
            where: `${group.id}/${k.id}`,
            message: `${r.failed}: ${shown}\n${tail(logFile)}`,
          });
          rmrf(out);
          continue;
        }
        if (group.check) {
          const err = safe(() => group.check(c, k.id));
          if (err) {
            r.failed = `check failed after ${tag}: ${err}`;
            this.failures.push({ where: `${group.id}/${k.id}`, message: r.failed });
          }
        }
        r.runs.push(m);
        if (k.produces && !r.failed) {
          keepArtifact(c.work, k.produces, out);
          this.made.add(k.produces);
        } else {
          rmrf(out);
        }
      }
    }
    rmrf(path.join(this.outRoot, group.id));
    return res;
  }
}

async function safeAsync(fn, fallback) {
  try {
    return await fn();
  } catch (e) {
    log(`bench: ${e.message}`);
    return fallback;
  }
}

function safe(fn) {
  try {
    return fn();
  } catch (e) {
    return e.message;
  }
}
