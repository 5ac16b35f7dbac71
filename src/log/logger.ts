import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { errorMessage, UsageError } from '../errors.js';
import { secrets } from '../secrets.js';

/**
 * One small JSON-lines logger for the whole process, hand-written rather than pino: pino costs
 * ~25-30 ms of start-up per run (measured: `dbbackup version` takes ~40 ms in all), and a CLI that
 * PostgreSQL may start once per WAL segment pays that every time. Records are written
 * synchronously, one write each, so nothing is lost when the process exits right after.
 *
 * Two kinds of records: notes for people (what `out.note` printed before: warnings, "Received
 * SIGTERM…"), and events for machines (start, finish, audit, notification). On stderr in the text
 * format people see only the notes (events too with --verbose); in the JSON format, and in a
 * --log-file, every record at or above the level is written.
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'text' | 'json';
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];
export const LOG_FORMATS: readonly LogFormat[] = ['text', 'json'];

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogFields = Record<string, string | number | boolean | null | undefined | string[]>;

export interface LogRecord {
  time: string;
  level: LogLevel;
  command?: string;
  operationId?: string;
  database?: string;
  event: string;
  message: string;
  [field: string]: unknown;
}

export interface LogSettings {
  format: LogFormat;
  level: LogLevel;
  /** Also append every record (in `format`) to this file. */
  file?: string;
}

export interface LogContext {
  command?: string;
  operationId?: string;
  database?: string;
}

/** Where records go; a test (or the TUI) can give its own. */
export interface LogSink {
  write(text: string): void;
}

const stderrSink: LogSink = { write: (text) => void process.stderr.write(text) };

/** A file opened for appending (0600, its directory 0700 when created); one write per record. */
class FileSink implements LogSink {
  private readonly fd: number;

  constructor(readonly file: string) {
    try {
      mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      this.fd = openSync(file, 'a', 0o600);
    } catch (err) {
      throw new UsageError(
        `Cannot open the log file ${file}: ${errorMessage(err)}`,
        'Check --log-file (or log.file in the configuration): its directory must be writable.',
      );
    }
  }

  write(text: string): void {
    try {
      writeSync(this.fd, text);
    } catch {
      // A full disk must not turn a stored backup into a failure; the stderr copy still exists.
    }
  }

  close(): void {
    closeSync(this.fd);
  }
}

function mask(text: string): string {
  return secrets.mask(text);
}

function maskValue(value: unknown): unknown {
  if (typeof value === 'string') return mask(value);
  if (Array.isArray(value)) return value.map(maskValue);
  return value;
}

/** `key=value` pairs for the text format; values with spaces or quotes are JSON-quoted. */
function textFields(fields: Record<string, unknown>): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined || value === null) continue;
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    parts.push(`${key}=${/[\s"=]/.test(text) || text === '' ? JSON.stringify(text) : text}`);
  }
  return parts.join(' ');
}

export function formatRecord(record: LogRecord, format: LogFormat): string {
  if (format === 'json') return `${JSON.stringify(record)}\n`;
  // pid and host are for machines reading many hosts' logs; a person reads one.
  const {
    time,
    level,
    command,
    operationId,
    database: _db,
    event,
    message,
    pid: _pid,
    host: _host,
    ...rest
  } = record;
  const where = [command, operationId?.slice(0, 8)].filter(Boolean).join(' ');
  const fields = textFields({ database: record.database, ...rest });
  return `${time} ${level.toUpperCase().padEnd(5)} ${where ? `[${where}] ` : ''}${event}: ${message}${fields ? ` ${fields}` : ''}\n`;
}

export class Logger {
  private settings: LogSettings = { format: 'text', level: 'info' };
  private context: LogContext = {};
  private file: FileSink | undefined;

  constructor(private readonly stderr: LogSink = stderrSink) {}

  /** Applies the effective --log-format/--log-file/level; opening a bad --log-file is a usage error. */
  configure(settings: LogSettings): void {
    if (settings.file !== this.file?.file) {
      this.file?.close();
      this.file = settings.file ? new FileSink(settings.file) : undefined;
    }
    this.settings = { ...settings };
  }

  get format(): LogFormat {
    return this.settings.format;
  }

  get level(): LogLevel {
    return this.settings.level;
  }

  /** -q: results and notes are not printed, progress is off; warnings and errors still are. */
  get quiet(): boolean {
    return RANK[this.settings.level] > RANK.info;
  }

  enabled(level: LogLevel): boolean {
    return RANK[level] >= RANK[this.settings.level];
  }

  setContext(context: LogContext): void {
    this.context = { ...this.context, ...context };
  }

  /** A machine event (start, finish, audit…): people see it on stderr only with --verbose. */
  event(level: LogLevel, event: string, message: string, fields: LogFields = {}): void {
    this.emit(level, event, message, fields, false);
  }

  debug(event: string, message: string, fields: LogFields = {}): void {
    this.emit('debug', event, message, fields, false);
  }

  /**
   * A line for people, as commands printed it before: "warning: …" is a warning, anything else a
   * note. In the text format it is printed exactly as given.
   */
  note(text: string): void {
    const warning = /^warning: /.exec(text);
    const level: LogLevel = warning ? 'warn' : 'info';
    this.emit(
      level,
      warning ? 'warning' : 'note',
      warning ? text.slice(warning[0].length) : text,
      {},
      true,
      text,
    );
  }

  warn(message: string, fields: LogFields = {}): void {
    this.emit('warn', 'warning', message, fields, true, `warning: ${message}`);
  }

  /** The final error of a command; `lines` is its text form (message, details, hint). */
  failure(message: string, fields: LogFields, lines: string[]): void {
    this.emit('error', 'error', message, fields, true, lines.join('\n'));
  }

  private emit(
    level: LogLevel,
    event: string,
    message: string,
    fields: LogFields,
    human: boolean,
    humanText?: string,
  ): void {
    if (!this.enabled(level)) return;
    const toStderr = this.settings.format === 'json' || human || this.settings.level === 'debug';
    if (!toStderr && !this.file) return;
    const context = Object.fromEntries(Object.entries(this.context).map(([k, v]) => [k, maskValue(v)]));
    const record: LogRecord = {
      time: new Date().toISOString(),
      level,
      ...context,
      event,
      message: mask(message),
      pid: process.pid,
      host: os.hostname(),
    };
    for (const [key, value] of Object.entries(fields)) {
      if (value !== undefined && !(key in record)) record[key] = maskValue(value);
    }
    if (this.settings.format === 'json') this.stderr.write(formatRecord(record, 'json'));
    else if (human) this.stderr.write(`${mask(humanText ?? message)}\n`);
    else if (this.settings.level === 'debug') this.stderr.write(formatRecord(record, 'text'));
    this.file?.write(formatRecord(record, this.settings.format));
  }
}

/** The process's logger: configured once the command line and configuration are known. */
export const log = new Logger();
