// Time one command and account for its resources.
//
// What is measured, and how:
//  * wall      – high-resolution clock around spawn → exit of the measured command.
//  * cpu       – user + sys of the whole process tree (every process the command started and reaped:
//                node + pg_dump + zstd + …, or bash + each stage of a pipeline). From GNU time's
//                wait4() rusage when /usr/bin/time exists, otherwise from the harness's own
//                cutime/cstime in /proc/self/stat (the harness reaps the command, so the same figure).
//  * rssMax    – peak RSS of the largest single process in the tree: GNU time's %M (the kernel's
//                ru_maxrss over all reaped descendants, exact). Without GNU time: the largest VmHWM seen
//                by the sampler.
//  * rssTree   – peak of the SUM of VmRSS over all processes in the tree, sampled from /proc every
//                SAMPLE_MS (default 50 ms). Shared pages (libc, …) count once per process, so this is an
//                upper bound of the tree's real footprint; a spike shorter than the interval can be missed.
//  * serverCpu – CPU used meanwhile by the database server (PostgreSQL postmaster + its children + what it
//                reaped; mariadbd's threads), when the server runs on this machine. Not part of `cpu`.
//  * auxCpu    – CPU used meanwhile by helper processes of the benchmark itself (the S3 emulator), when
//                the group names some (`aux`). Not part of `cpu` nor of `serverCpu`.
//  * otherCpu  – the machine's busy time (/proc/stat) minus cpu, serverCpu, auxCpu and the harness itself:
//                the noise from anything else running (other jobs on a shared box).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { clearInterval, setInterval, setTimeout } from 'node:timers';
import { sleep, which } from './util.mjs';

export const GNU_TIME = fs.existsSync('/usr/bin/time') ? '/usr/bin/time' : null;
const HZ = 100; // USER_HZ is 100 on every Linux architecture Node runs on
const SAMPLE_MS = Number(process.env.SAMPLE_MS ?? 50);

function readText(p) {
  try {
    return fs.readFileSync(p, 'utf8');
  } catch {
    return null;
  }
}

/** Fields of /proc/PID/stat after the command name; field N of proc(5) is f[N - 3]. */
function statFields(pid) {
  const s = readText(`/proc/${pid}/stat`);
  if (!s) return null;
  return s.slice(s.lastIndexOf(')') + 2).split(' ');
}

export function childrenOf(pid) {
  const out = [];
  let tasks;
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tasks) {
    const c = readText(`/proc/${pid}/task/${t}/children`);
    if (c) for (const x of c.split(' ')) if (x.trim()) out.push(Number(x));
  }
  return out;
}

function descendants(root) {
  const seen = [];
  const stack = [root];
  while (stack.length) {
    const p = stack.pop();
    for (const c of childrenOf(p)) {
      seen.push(c);
      stack.push(c);
    }
  }
  return seen;
}

function memOf(pid) {
  const s = readText(`/proc/${pid}/status`);
  if (!s) return null;
  const rss = /VmRSS:\s+(\d+)/.exec(s);
  const hwm = /VmHWM:\s+(\d+)/.exec(s);
  const name = /Name:\s+(\S+)/.exec(s);
  if (!rss) return null; // a zombie has no memory lines
  return { rss: Number(rss[1]), hwm: hwm ? Number(hwm[1]) : 0, name: name ? name[1] : '?' };
}

/** Busy and total jiffies of the whole machine. */
function machineTicks() {
  const line = (readText('/proc/stat') ?? '').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line;
  const busy = user + nice + system + irq + softirq + (steal ?? 0);
  return { busy, total: busy + idle + iowait };
}

function selfChildTicks() {
  const f = statFields('self');
  return f ? Number(f[13]) + Number(f[14]) : 0;
}

/**
 * CPU ticks of a local database server. PostgreSQL: the postmaster, each live child (backends,
 * workers) and what the postmaster has reaped (exited backends). MariaDB: mariadbd (all threads).
 */
export function serverTicks(pids) {
  let t = 0;
  for (const { pid, reaps } of pids) {
    const f = statFields(pid);
    if (!f) continue;
    t += Number(f[11]) + Number(f[12]);
    if (reaps) {
      t += Number(f[13]) + Number(f[14]);
      for (const c of childrenOf(pid)) {
        const g = statFields(c);
        if (g) t += Number(g[11]) + Number(g[12]);
      }
    }
  }
  return t;
}

/** Wait (up to waitS seconds) until the machine is below pct% busy over half a second. */
export async function waitQuiet(waitS, pct = 15) {
  if (!(waitS > 0)) return 0;
  const t0 = Date.now();
  for (;;) {
    const a = machineTicks();
    await sleep(500);
    const b = machineTicks();
    const busy = (100 * (b.busy - a.busy)) / Math.max(1, b.total - a.total);
    if (busy < pct) return (Date.now() - t0) / 1000;
    if (Date.now() - t0 >= waitS * 1000) return (Date.now() - t0) / 1000;
  }
}

/**
 * Run argv (no shell) with stdout+stderr appended to logFile and measure it.
 * `server` and `aux` are processes whose CPU is counted separately (see above).
 * Returns { wall, user, sys, cpu, rssMaxKb, rssMaxName, rssTreeKb, serverCpu, auxCpu, otherCpu, rc, signal }.
 */
export async function measure(argv, { env = process.env, cwd, logFile, server = [], aux = [] } = {}) {
  const fd = fs.openSync(logFile, 'a');
  const tf = path.join(os.tmpdir(), `dbbackup-bench-time-${process.pid}.txt`);
  const full = GNU_TIME ? [GNU_TIME, '-f', '%e %U %S %M %x', '-o', tf, ...argv] : argv;
  fs.rmSync(tf, { force: true });

  const cpu0 = process.cpuUsage();
  const self0 = selfChildTicks();
  const m0 = machineTicks();
  const s0 = serverTicks(server);
  const a0 = serverTicks(aux);
  const t0 = process.hrtime.bigint();
  const child = spawn(full[0], full.slice(1), { env, cwd, stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);

  let treeKb = 0;
  const hwm = new Map(); // pid -> {hwm, name}
  const sample = () => {
    if (!child.pid) return;
    // Under GNU time the tree is time's children; `time` itself is harness, not measured.
    const pids = descendants(child.pid);
    if (!GNU_TIME) pids.push(child.pid);
    let sum = 0;
    for (const p of pids) {
      const m = memOf(p);
      if (!m) continue;
      sum += m.rss;
      const prev = hwm.get(p);
      if (!prev || m.hwm > prev.hwm) hwm.set(p, { hwm: m.hwm, name: m.name });
    }
    if (sum > treeKb) treeKb = sum;
  };
  const timer = setInterval(sample, SAMPLE_MS);
  setTimeout(sample, 5);

  const { code, signal, spawnError } = await new Promise((resolve) => {
    child.once('error', (e) => resolve({ code: 127, signal: null, spawnError: e }));
    child.once('exit', (c, s) => resolve({ code: c, signal: s }));
  });
  const t1 = process.hrtime.bigint();
  clearInterval(timer);
  const s1 = serverTicks(server);
  const a1 = serverTicks(aux);
  const m1 = machineTicks();
  const self1 = selfChildTicks();
  const cpu1 = process.cpuUsage(cpu0);

  let user = NaN;
  let sys = NaN;
  let rssMaxKb = NaN;
  const rc = code ?? 128; // GNU time exits with the command's status (128+N for a signal)
  if (GNU_TIME) {
    const lines = (readText(tf) ?? '').trim().split('\n');
    const last = lines[lines.length - 1]?.trim().split(/\s+/) ?? [];
    if (last.length >= 5 && last.every((x) => /^[\d.]+$/.test(x))) {
      user = Number(last[1]);
      sys = Number(last[2]);
      rssMaxKb = Number(last[3]);
    }
    fs.rmSync(tf, { force: true });
  }
  if (!Number.isFinite(user)) {
    // No GNU time (or it failed): the harness reaped the tree, so its children's CPU is ours.
    user = (self1 - self0) / HZ;
    sys = 0;
  }
  let rssMaxName = '';
  let sampledMax = 0;
  for (const { hwm: h, name } of hwm.values()) {
    if (h > sampledMax) {
      sampledMax = h;
      rssMaxName = name;
    }
  }
  if (!Number.isFinite(rssMaxKb)) rssMaxKb = sampledMax || NaN;

  const wall = Number(t1 - t0) / 1e9;
  const cpu = user + sys;
  const serverCpu = server.length ? Math.max(0, (s1 - s0) / HZ) : NaN;
  const auxCpu = aux.length ? Math.max(0, (a1 - a0) / HZ) : NaN;
  const machine = (m1.busy - m0.busy) / HZ;
  const harness = (cpu1.user + cpu1.system) / 1e6;
  const otherCpu = Math.max(
    0,
    machine -
      cpu -
      (Number.isFinite(serverCpu) ? serverCpu : 0) -
      (Number.isFinite(auxCpu) ? auxCpu : 0) -
      harness,
  );
  if (spawnError) fs.appendFileSync(logFile, `spawn failed: ${spawnError.message}\n`);
  return {
    wall,
    user,
    sys,
    cpu,
    rssMaxKb,
    rssMaxName,
    rssTreeKb: treeKb || NaN,
    serverCpu,
    auxCpu,
    otherCpu,
    rc: signal ? 128 : rc,
    signal,
  };
}

export const haveBash = () => which('bash');
