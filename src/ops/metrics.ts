import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { errnoCode } from '../errors.js';
import { withLock } from './lock.js';
import type { OperationRecord } from './record.js';

/**
 * The Prometheus textfile (node_exporter's textfile collector reads `*.prom` in its directory).
 * Hand-written text rather than prom-client: a few gauges per operation need no registry, and the
 * file must be merged with what other runs wrote, not replaced. Every update takes a lock, reads
 * the file, replaces only its own series (same name and labels) and renames a new file into
 * place, so concurrent runs for other databases or kinds never clobber each other and the
 * collector never reads half a file.
 */

export interface MetricSample {
  name: string;
  help: string;
  type?: 'gauge' | 'counter';
  labels: Record<string, string>;
  value: number;
}

interface Family {
  help: string;
  type: string;
  /** Samples by their label text. */
  samples: Map<string, { labels: Record<string, string>; value: number }>;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

export function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labelText(labels: Record<string, string>): string {
  const keys = Object.keys(labels).sort();
  return keys.length ? `{${keys.map((k) => `${k}="${escapeLabel(labels[k] ?? '')}"`).join(',')}}` : '';
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

/** `{a="x",b="y"}` → labels; undefined when malformed. */
function parseLabels(text: string): Record<string, string> | undefined {
  const labels: Record<string, string> = {};
  const re = /\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)/gy;
  let m: RegExpExecArray | null;
  let end = 0;
  while (end < text.length && (m = re.exec(text))) {
    const [, key, raw] = m;
    if (!key) return undefined;
    labels[key] = (raw ?? '').replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    end = re.lastIndex;
  }
  return end === text.length ? labels : undefined;
}

/** The families in a textfile this module wrote (lines it does not understand are dropped). */
export function parseTextfile(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const family = (name: string): Family => {
    let f = families.get(name);
    if (!f) families.set(name, (f = { help: '', type: 'untyped', samples: new Map() }));
    return f;
  };
  for (const line of text.split('\n')) {
    const meta = /^#\s+(HELP|TYPE)\s+(\S+)\s*(.*)$/.exec(line);
    if (meta?.[2]) {
      const f = family(meta[2]);
      if (meta[1] === 'HELP') f.help = (meta[3] ?? '').replace(/\\n/g, '\n').replace(/\\\\/g, '\\');
      else f.type = meta[3] || 'untyped';
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?\s*$/.exec(line);
    if (!sample?.[1]) continue;
    const labels = parseLabels(sample[2] ?? '');
    const value = Number(sample[3] === '+Inf' ? Infinity : sample[3] === '-Inf' ? -Infinity : sample[3]);
    if (!labels || (Number.isNaN(value) && sample[3] !== 'NaN')) continue;
    family(sample[1]).samples.set(labelText(labels), { labels, value });
  }
  return families;
}

export function mergeSamples(families: Map<string, Family>, samples: MetricSample[]): Map<string, Family> {
  for (const s of samples) {
    if (!NAME.test(s.name)) throw new Error(`invalid metric name ${s.name}`);
    let f = families.get(s.name);
    if (!f) families.set(s.name, (f = { help: s.help, type: s.type ?? 'gauge', samples: new Map() }));
    f.help = s.help;
    f.type = s.type ?? 'gauge';
    f.samples.set(labelText(s.labels), { labels: s.labels, value: s.value });
  }
  return families;
}

export function renderTextfile(families: Map<string, Family>): string {
  const out: string[] = [];
  for (const name of [...families.keys()].sort()) {
    const f = families.get(name);
    if (!f || !f.samples.size) continue;
    out.push(`# HELP ${name} ${f.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`);
    out.push(`# TYPE ${name} ${f.type}`);
    for (const key of [...f.samples.keys()].sort()) {
      out.push(`${name}${key} ${formatValue(f.samples.get(key)?.value ?? Number.NaN)}`);
    }
  }
  return out.length ? `${out.join('\n')}\n` : '';
}

/**
 * Replaces this run's series in the file, keeping everyone else's. The file is 0644: the
 * exporter runs as another user, and it holds no secret.
 */
export async function updateTextfile(file: string, samples: MetricSample[], waitMs = 10_000): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await withLock(`${file}.lock`, { waitMs }, async () => {
    const current = await readFile(file, 'utf8').catch((err: unknown) => {
      if (errnoCode(err) === 'ENOENT') return '';
      throw err;
    });
    const text = renderTextfile(mergeSamples(parseTextfile(current), samples));
    // Not *.prom, so the collector never reads it half written.
    const temp = path.join(
      path.dirname(file),
      `.${path.basename(file)}.${randomBytes(4).toString('hex')}.tmp`,
    );
    try {
      await writeFile(temp, text, { mode: 0o644 });
      await chmod(temp, 0o644);
      await rename(temp, file);
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      throw err;
    }
  });
}

/** The gauges of one operation, per kind and database (and server, for two servers' `postgres`). */
export function operationSamples(record: OperationRecord): MetricSample[] {
  const labels = { kind: record.kind, database: record.database ?? '*', server: record.server ?? '-' };
  const finished = Date.parse(record.time) / 1000;
  const ok = record.outcome === 'success';
  const samples: MetricSample[] = [
    {
      name: 'dbbackup_last_attempt_timestamp_seconds',
      help: 'Unix time the last run of this kind for this database finished, whatever its outcome.',
      labels,
      value: finished,
    },
    {
      name: 'dbbackup_last_status',
      help: 'Outcome of the last run: 1 success, 0 failure or interrupted.',
      labels,
      value: ok ? 1 : 0,
    },
    {
      name: 'dbbackup_last_exit_code',
      help: 'Exit code of the last run.',
      labels,
      value: record.exitCode,
    },
    {
      name: 'dbbackup_last_duration_seconds',
      help: 'Wall time of the last run, in seconds.',
      labels,
      value: record.durationSeconds,
    },
  ];
  if (ok) {
    samples.push({
      name: 'dbbackup_last_success_timestamp_seconds',
      help: 'Unix time the last successful run of this kind for this database finished.',
      labels,
      value: finished,
    });
    if (record.bytes !== undefined)
      samples.push({
        name: 'dbbackup_last_success_bytes',
        help: 'Bytes stored (backups), read (restores, verifies) or deleted by the last successful run.',
        labels,
        value: record.bytes,
      });
  }
  return samples;
}
