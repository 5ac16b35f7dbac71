import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { errnoCode } from '../errors.js';
import { isOperationRecord, type OperationRecord } from './record.js';

/**
 * The audit trail: one JSON object per line (NDJSON), mode 0600, appended after every operation
 * that changes or checks data. Several runs may append at once (cron, a WAL archiver, a person):
 * each record is one write(2) on a descriptor opened with O_APPEND, and is kept under PIPE_BUF
 * (4096 bytes) by shortening its longest texts, so lines never interleave.
 */

export const MAX_RECORD_BYTES = 4000;

/** $XDG_STATE_HOME/dbbackup/audit.jsonl, else ~/.local/state/dbbackup/audit.jsonl. */
export function defaultAuditFile(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_STATE_HOME || path.join(os.homedir(), '.local', 'state');
  return path.join(base, 'dbbackup', 'audit.jsonl');
}

function shorten(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** The record as one line under MAX_RECORD_BYTES: long texts are cut, never the fields that identify it. */
export function auditLine(record: OperationRecord): string {
  let line = `${JSON.stringify(record)}\n`;
  for (const max of [1000, 300, 100]) {
    if (Buffer.byteLength(line) <= MAX_RECORD_BYTES) break;
    const details = record.details
      ? Object.fromEntries(
          Object.entries(record.details).map(([k, v]) => [k, typeof v === 'string' ? shorten(v, max) : v]),
        )
      : undefined;
    const cut: OperationRecord = {
      ...record,
      error: record.error === undefined ? undefined : shorten(record.error, max),
      hint: record.hint === undefined ? undefined : shorten(record.hint, max),
      destination: record.destination === undefined ? undefined : shorten(record.destination, max),
      backup: record.backup === undefined ? undefined : shorten(record.backup, max),
      database: record.database === undefined ? undefined : shorten(record.database, max),
      details,
    };
    line = `${JSON.stringify(cut)}\n`;
  }
  return line;
}

/** Appends one record (creating the file 0600 and its directory 0700). Throws on failure. */
export function appendAudit(file: string, record: OperationRecord): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const line = Buffer.from(auditLine(record));
  const fd = openSync(file, 'a', 0o600);
  try {
    const written = writeSync(fd, line);
    if (written !== line.length)
      throw new Error(`short write to ${file} (${written} of ${line.length} bytes)`);
  } finally {
    closeSync(fd);
  }
}

export interface HistoryQuery {
  /** At most this many records (newest first); undefined for all. */
  limit?: number;
  /** Only failed and interrupted operations. */
  failed?: boolean;
  /** Any other condition (a command, a database). */
  where?: (record: OperationRecord) => boolean;
}

export interface History {
  records: OperationRecord[];
  /** Lines that are not records (a torn line after a crash, someone's edit). */
  skipped: number;
}

/** Lines of a file from the last to the first, reading backwards in chunks (the log only grows). */
async function* linesBackwards(file: string, chunkSize = 64 * 1024): AsyncGenerator<string> {
  const handle = await open(file, 'r');
  try {
    let position = (await handle.stat()).size;
    let rest = Buffer.alloc(0);
    while (position > 0) {
      const size = Math.min(chunkSize, position);
      position -= size;
      const chunk = Buffer.alloc(size);
      await handle.read(chunk, 0, size, position);
      rest = Buffer.concat([chunk, rest]);
      let newline = rest.lastIndexOf(0x0a, rest.length - 1);
      // Split only on complete lines; the first part may continue in the previous chunk.
      while (newline >= 0) {
        const line = rest.subarray(newline + 1).toString('utf8');
        rest = rest.subarray(0, newline);
        if (line.trim()) yield line;
        newline = rest.lastIndexOf(0x0a);
      }
    }
    if (rest.length && rest.toString('utf8').trim()) yield rest.toString('utf8');
  } finally {
    await handle.close();
  }
}

/** Records newest first; a missing file is an empty history. */
export async function readHistory(file: string, query: HistoryQuery = {}): Promise<History> {
  const records: OperationRecord[] = [];
  let skipped = 0;
  try {
    for await (const line of linesBackwards(file)) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        parsed = undefined;
      }
      if (!isOperationRecord(parsed)) {
        skipped++;
        continue;
      }
      if (query.failed && parsed.outcome === 'success') continue;
      if (query.where && !query.where(parsed)) continue;
      records.push(parsed);
      if (query.limit !== undefined && records.length >= query.limit) break;
    }
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
  }
  return { records, skipped };
}

/** The newest record that matches (what `schedule list` shows as a job's last result). */
export async function lastRecord(
  file: string,
  where: (record: OperationRecord) => boolean,
): Promise<OperationRecord | undefined> {
  return (await readHistory(file, { limit: 1, where })).records[0];
}
