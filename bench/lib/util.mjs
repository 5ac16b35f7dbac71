// Small helpers shared by the bench modules: running short commands, statistics, file sizes, formatting.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout } from 'node:timers';

/** Run a short command synchronously; returns trimmed stdout, or throws with its stderr. */
export function sh(file, args, { env = process.env, input, cwd, timeoutMs = 600_000 } = {}) {
  const r = spawnSync(file, args, {
    env,
    input,
    cwd,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    timeout: timeoutMs,
  });
  if (r.error) throw new Error(`${file}: ${r.error.message}`);
  if (r.status !== 0) {
    const err = (r.stderr || r.stdout || '').trim().split('\n').slice(-8).join('\n');
    const e = new Error(
      `${path.basename(file)} ${args.join(' ').slice(0, 200)} exited ${r.status ?? r.signal}:\n${err}`,
    );
    e.stderr = r.stderr;
    throw e;
  }
  return (r.stdout ?? '').trim();
}

/** Like sh() but returns null instead of throwing. */
export function trySh(file, args, opts) {
  try {
    return sh(file, args, opts);
  } catch {
    return null;
  }
}

/** Absolute path of a program on PATH, or null. */
export function which(name) {
  if (name.includes('/')) return fs.existsSync(name) ? name : null;
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (!dir) continue;
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      /* not here */
    }
  }
  return null;
}

/** First line of `prog --version` (or another flag), or null. */
export function toolVersion(prog, flag = '--version') {
  const p = which(prog);
  if (!p) return null;
  try {
    const r = execFileSync(p, [flag], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 10_000,
    });
    return r.trim().split('\n')[0];
  } catch (e) {
    const out = `${e.stdout ?? ''}${e.stderr ?? ''}`.trim();
    return out ? out.split('\n')[0] : null;
  }
}

/** Bytes in a file or a directory tree; `exclude` filters file names. 0 if it does not exist. */
export function sizeOf(p, exclude = () => false) {
  let st;
  try {
    st = fs.lstatSync(p);
  } catch {
    return 0;
  }
  if (st.isDirectory()) {
    let sum = 0;
    for (const e of fs.readdirSync(p)) sum += sizeOf(path.join(p, e), exclude);
    return sum;
  }
  return exclude(path.basename(p)) ? 0 : st.size;
}

export function rmrf(p) {
  fs.rmSync(p, { recursive: true, force: true });
}

export function mkdirp(p) {
  fs.mkdirSync(p, { recursive: true });
  return p;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------- statistics ----------
export function median(xs) {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}
export const min = (xs) => Math.min(...xs.filter(Number.isFinite));
export const max = (xs) => Math.max(...xs.filter(Number.isFinite));

// ---------- formatting ----------
export function fmt(x, digits = 2) {
  if (x === null || x === undefined || !Number.isFinite(x)) return '–';
  return x.toFixed(digits);
}
export const mb = (bytes) => (bytes === null || bytes === undefined ? null : bytes / 1e6);
export function fmtMB(bytes, digits = 1) {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return '–';
  const v = bytes / 1e6;
  return v < 10 ? v.toFixed(digits + 1) : v.toFixed(digits);
}
/** Escape text for a Markdown table cell. */
export const cell = (s) => String(s).replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** POSIX single-quote a word for a bash command line (only when needed). */
export function q(s) {
  s = String(s);
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

export function log(...a) {
  process.stderr.write(a.join(' ') + '\n');
}
