import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { nextRuns, parseCron, toOnCalendar } from '../../src/schedule/cron.js';
import {
  cronJobs,
  renderCronLines,
  renderUnits,
  withoutCronJob,
  type Job,
} from '../../src/schedule/schedule.js';

const run = promisify(execFile);

/** systemd's own next elapses of an OnCalendar value after `base` (systemd-analyze calendar). */
async function systemdNext(calendar: string, base: Date, count: number): Promise<number[]> {
  const { stdout } = await run(
    'systemd-analyze',
    [
      'calendar',
      `--base-time=${base
        .toISOString()
        .replace('T', ' ')
        .replace(/\.\d+Z$/, ' UTC')}`,
      `--iterations=${count}`,
      calendar,
    ],
    { env: { ...process.env, TZ: 'UTC' } },
  );
  return [...stdout.matchAll(/(?:Next elapse|Iter\. #\d+): \w{3} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC/g)].map(
    (m) => Date.parse(`${m[1]?.replace(' ', 'T')}Z`),
  );
}

describe('cron expressions', () => {
  const base = new Date('2026-01-30T10:17:00Z');
  it.each([
    ['0 5 * * *', ['2026-01-31T05:00:00Z', '2026-02-01T05:00:00Z']],
    ['*/15 2 * * *', ['2026-01-31T02:00:00Z', '2026-01-31T02:15:00Z']],
    ['30 2 * * 1-5', ['2026-02-02T02:30:00Z', '2026-02-03T02:30:00Z']],
    ['0 0 1 * *', ['2026-02-01T00:00:00Z', '2026-03-01T00:00:00Z']],
    ['0 3 * * sun', ['2026-02-01T03:00:00Z', '2026-02-08T03:00:00Z']],
    ['@weekly', ['2026-02-01T00:00:00Z', '2026-02-08T00:00:00Z']],
    // Both day fields restricted: either matches (cron's rule) — the 13th, and every Friday.
    [
      '0 12 13 * 5',
      [
        '2026-01-30T12:00:00Z',
        '2026-02-06T12:00:00Z',
        '2026-02-13T12:00:00Z',
        '2026-02-20T12:00:00Z',
        '2026-02-27T12:00:00Z',
        '2026-03-06T12:00:00Z',
        '2026-03-13T12:00:00Z',
      ],
    ],
  ])(
    '%s: next runs, the same from croner and from systemd for the translated OnCalendar',
    async (expr, expected) => {
      const prevTz = process.env.TZ;
      process.env.TZ = 'UTC';
      try {
        const spec = parseCron(expr);
        const ours = nextRuns(spec, expected.length, base).map((d) => d.toISOString().replace('.000', ''));
        expect(ours).toEqual(expected);
        const systemd = (
          await Promise.all(toOnCalendar(spec).map((c) => systemdNext(c, base, expected.length)))
        )
          .flat()
          .sort((a, b) => a - b)
          .filter((t, i, all) => all.indexOf(t) === i)
          .slice(0, expected.length)
          .map((t) => new Date(t).toISOString().replace('.000', ''));
        expect(systemd).toEqual(expected);
      } finally {
        process.env.TZ = prevTz;
      }
    },
  );

  it.each([
    ['0 5 * *', '4 fields'],
    ['61 5 * * *', '61 is outside 0-59 in the minute field'],
    ['0 5 * * 1-x', '"x" is not a number in the day of week field'],
    ['0 5 L * *', 'L, W, # and ? are not understood by cron'],
    ['@reboot', '@reboot is not a time'],
    ['0 5 10-2 * *', 'runs backwards'],
  ])('%s is refused: %s', (expr, why) => {
    let err: unknown;
    try {
      parseCron(expr);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).message).toContain(why);
    expect((err as UsageError).exitCode).toBe(2);
  });
});

describe('units and crontab lines', () => {
  const job: Job = {
    name: 'nightly-drill',
    cron: '0 5 * * *',
    args: ['drill', 'latest', '--database', "it's 100%"],
    method: 'systemd',
  };

  it('systemd-analyze verify accepts the generated service and timer', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'dbb-units-'));
    try {
      const units = renderUnits({ ...job, cron: '0 12 13 * 5' });
      expect(units.timer).toContain(
        'OnCalendar=*-*-13 12:00:00\nOnCalendar=Fri *-*-* 12:00:00\nPersistent=true',
      );
      await writeFile(path.join(dir, 'dbbackup-nightly-drill.service'), units.service);
      await writeFile(path.join(dir, 'dbbackup-nightly-drill.timer'), units.timer);
      const r = await run('systemd-analyze', [
        'verify',
        path.join(dir, 'dbbackup-nightly-drill.timer'),
        path.join(dir, 'dbbackup-nightly-drill.service'),
      ]).then(
        () => ({ code: 0, stderr: '' }),
        (err: { code: number; stderr: string }) => err,
      );
      expect(r.stderr.split('\n').filter((l) => /dbbackup-nightly-drill/.test(l))).toEqual([]);
      expect(r.code).toBe(0);
      // % is a specifier in unit files: doubled, so the argument arrives as typed.
      expect(units.service).toContain('"it\'s 100%%"');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a crontab entry round-trips: read back as written, removed leaving every other line byte for byte', () => {
    const others = 'MAILTO=dba@example.com\n# nightly vacuum\n0 1 * * * /usr/local/bin/vacuum --all\n';
    const lines = renderCronLines({ ...job, method: 'cron' });
    expect(lines[1]).toMatch(
      /^0 5 \* \* \* DBBACKUP_SCHEDULE='nightly-drill' PATH='[^']*' '[^']+' '[^']+' 'drill' 'latest' '--database' 'it'\\''s 100\\%'$/,
    );
    const crontab = `${others}${lines.join('\n')}\n@daily /bin/true\n`;
    expect(cronJobs(crontab)).toEqual([{ ...job, method: 'cron' }]);
    const removed = withoutCronJob(crontab, 'nightly-drill');
    expect(removed.removed).toBe(true);
    expect(removed.text).toBe(`${others}@daily /bin/true\n`);
    // Another job's name removes nothing.
    expect(withoutCronJob(crontab, 'other').text).toBe(crontab);
  });
});
