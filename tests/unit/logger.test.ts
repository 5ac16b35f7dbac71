import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { rememberSecret } from '../../src/errors.js';
import { Logger, type LogRecord } from '../../src/log/logger.js';
import { tempDir } from './helpers.js';

function capture(): { logger: Logger; text: () => string; records: () => LogRecord[] } {
  let text = '';
  const logger = new Logger({ write: (t) => void (text += t) });
  return {
    logger,
    text: () => text,
    records: () =>
      text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as LogRecord),
  };
}

describe('logger', () => {
  it('JSON lines parse back with time, level, command, operation id, database, event and fields', () => {
    const c = capture();
    c.logger.configure({ format: 'json', level: 'info' });
    c.logger.setContext({ command: 'backup single', operationId: 'op-1', database: 'shop' });
    c.logger.event('info', 'finish', 'backup single: success', { bytes: 42, backup: 'shop_1.dump.zst' });
    c.logger.note('warning: the disk is nearly full');
    const [finish, warning] = c.records();
    expect(finish).toMatchObject({
      level: 'info',
      command: 'backup single',
      operationId: 'op-1',
      database: 'shop',
      event: 'finish',
      message: 'backup single: success',
      bytes: 42,
      backup: 'shop_1.dump.zst',
    });
    expect(Number.isNaN(Date.parse(finish?.time ?? ''))).toBe(false);
    expect(warning).toMatchObject({ level: 'warn', event: 'warning', message: 'the disk is nearly full' });
  });

  it('text on stderr: notes exactly as before, machine events only with --verbose', () => {
    const c = capture();
    c.logger.configure({ format: 'text', level: 'info' });
    c.logger.event('info', 'start', 'backup single started');
    c.logger.note('warning: retention could not delete 1 backups');
    expect(c.text()).toBe('warning: retention could not delete 1 backups\n');
    c.logger.configure({ format: 'text', level: 'debug' });
    c.logger.event('info', 'start', 'backup single started', { profile: 'prod' });
    expect(c.text()).toMatch(/INFO {2}start: backup single started profile=prod\n$/);
  });

  it('-q (warn) hides notes but not warnings or errors', () => {
    const c = capture();
    c.logger.configure({ format: 'text', level: 'warn' });
    expect(c.logger.quiet).toBe(true);
    c.logger.note('Restoring into "shop"…');
    c.logger.note('warning: something odd');
    c.logger.failure('it broke', {}, ['dbbackup: error: it broke', 'hint: fix it']);
    expect(c.text()).toBe('warning: something odd\ndbbackup: error: it broke\nhint: fix it\n');
  });

  it('masks every remembered secret in messages and fields, in both formats', () => {
    rememberSecret('s3cr3t-pass');
    const c = capture();
    c.logger.configure({ format: 'json', level: 'info' });
    c.logger.note('warning: cannot connect with s3cr3t-pass');
    c.logger.event('error', 'finish', 'failed', {
      error: 'auth s3cr3t-pass rejected',
      list: ['x s3cr3t-pass'],
    });
    expect(c.text()).not.toContain('s3cr3t-pass');
    expect(c.records()[1]).toMatchObject({ error: 'auth **** rejected', list: ['x ****'] });
    const t = capture();
    t.logger.configure({ format: 'text', level: 'info' });
    t.logger.failure('bad s3cr3t-pass', {}, ['dbbackup: error: bad s3cr3t-pass']);
    expect(t.text()).toBe('dbbackup: error: bad ****\n');
  });

  it('--log-file gets every record, appended, mode 0600; a file it cannot open is a usage error', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const file = path.join(dir, 'logs', 'dbbackup.jsonl');
      const c = capture();
      c.logger.configure({ format: 'json', level: 'info', file });
      c.logger.event('info', 'start', 'one');
      c.logger.configure({ format: 'json', level: 'info', file });
      c.logger.event('info', 'finish', 'two');
      const lines = (await readFile(file, 'utf8')).trim().split('\n');
      expect(lines.map((l) => (JSON.parse(l) as LogRecord).message)).toEqual(['one', 'two']);
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      // Under a file, not a directory.
      expect(() =>
        c.logger.configure({ format: 'json', level: 'info', file: path.join(file, 'x.log') }),
      ).toThrow(/Cannot open the log file/);
    } finally {
      await cleanup();
    }
  });
});
