import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runHook } from '../../src/ops/hooks.js';
import { detectFormat, notifyAll, redactUrl, sendWebhook, webhookBody } from '../../src/ops/notify.js';
import { startWebhookServer, type WebhookServer } from '../harness/webhook-server.js';
import { tempDir } from './helpers.js';
import { record } from './ops-fixtures.js';

let server: WebhookServer;
beforeAll(async () => {
  server = await startWebhookServer();
});
afterAll(async () => {
  await server.close();
});

const failed = record({
  outcome: 'failure',
  exitCode: 1,
  error: 'Cannot connect to PostgreSQL at db1:5432',
  hint: 'Check --host and --port.',
  backup: undefined,
  bytes: undefined,
});

describe('webhook shapes', () => {
  it('each service gets the body it expects, saying what failed, where, the error, its hint and the host', async () => {
    for (const format of ['generic', 'slack', 'discord', 'teams', 'googlechat'] as const) {
      const r = await sendWebhook(server.url(`/shape/${format}`), format, webhookBody(format, failed), {
        timeoutMs: 5000,
      });
      expect(r).toMatchObject({ ok: true, attempts: 1, status: 200 });
    }
    const got = Object.fromEntries(
      server.received.filter((r) => r.path.startsWith('/shape/')).map((r) => [r.path.slice(7), r]),
    );
    for (const r of Object.values(got)) expect(r.headers['content-type']).toBe('application/json');
    const mustSay = [
      'backup single FAILED on backup1',
      'shop on db1:5432',
      'Cannot connect to PostgreSQL at db1:5432',
      'Check --host and --port.',
    ];
    const slack = got.slack?.body as { text: string };
    const discord = got.discord?.body as { content: string; username: string };
    const chat = got.googlechat?.body as { text: string };
    const generic = got.generic?.body as {
      event: string;
      text: string;
      record: { id: string; outcome: string };
    };
    type Card = {
      type: string;
      attachments: Array<{
        contentType: string;
        content: {
          type: string;
          body: Array<{ text?: string; facts?: Array<{ title: string; value: string }> }>;
        };
      }>;
    };
    const teams = got.teams?.body as Card;
    const teamsText = JSON.stringify(teams.attachments[0]?.content.body);
    for (const text of [slack.text, discord.content, chat.text, generic.text, teamsText])
      for (const phrase of mustSay) expect(text).toContain(phrase);
    expect(discord.username).toBe('dbbackup');
    expect(generic).toMatchObject({
      event: 'dbbackup.operation',
      record: { id: 'id-1', outcome: 'failure' },
    });
    expect(teams.type).toBe('message');
    expect(teams.attachments[0]).toMatchObject({
      contentType: 'application/vnd.microsoft.card.adaptive',
      content: { type: 'AdaptiveCard' },
    });
  });

  it('auto picks the shape from the host', () => {
    expect(detectFormat('https://hooks.slack.com/services/T/B/X')).toBe('slack');
    expect(detectFormat('https://discord.com/api/webhooks/1/abc')).toBe('discord');
    expect(detectFormat('https://acme.webhook.office.com/webhookb2/x')).toBe('teams');
    expect(detectFormat('https://prod-01.westus.logic.azure.com/workflows/x')).toBe('teams');
    expect(detectFormat('https://chat.googleapis.com/v1/spaces/X/messages?key=k')).toBe('googlechat');
    expect(detectFormat('https://ops.example.com/hook')).toBe('generic');
    expect(redactUrl('https://hooks.slack.com/services/T/B/secret')).toBe('https://hooks.slack.com/…');
  });

  it('Discord content stays under its 2000-character limit', () => {
    const body = webhookBody('discord', record({ error: 'e'.repeat(5000) })) as { content: string };
    expect(body.content.length).toBeLessThanOrEqual(2000);
  });
});

describe('delivery', () => {
  it('a 500 is retried with backoff, then reported', async () => {
    const r = await sendWebhook(
      server.url('/status/500/a'),
      'generic',
      {},
      { timeoutMs: 10_000, backoffMs: 50 },
    );
    expect(r).toMatchObject({ ok: false, attempts: 3, status: 500, error: 'HTTP 500' });
    const hits = await server.waitFor('/status/500/a', 3);
    expect((hits[2]?.at ?? 0) - (hits[1]?.at ?? 0)).toBeGreaterThanOrEqual(
      (hits[1]?.at ?? 0) - (hits[0]?.at ?? 0),
    );
  });

  it('a 404 is not retried (it will not get better)', async () => {
    const r = await sendWebhook(
      server.url('/status/404/a'),
      'generic',
      {},
      { timeoutMs: 10_000, backoffMs: 50 },
    );
    expect(r).toMatchObject({ ok: false, attempts: 1, status: 404 });
  });

  it('a webhook that never answers is given up within its budget', async () => {
    const started = Date.now();
    const r = await sendWebhook(server.url('/hang/a'), 'generic', {}, { timeoutMs: 1500, backoffMs: 100 });
    const elapsed = Date.now() - started;
    expect(r.ok).toBe(false);
    expect(r.error).toMatch(/no answer within/);
    expect(elapsed).toBeGreaterThanOrEqual(1400);
    expect(elapsed).toBeLessThan(4000);
  });

  it('nothing listening: the error, not an exception', async () => {
    const [r] = await notifyAll(['http://127.0.0.1:9/x'], 'auto', failed, { timeoutMs: 1000 });
    expect(r?.ok).toBe(false);
    expect(r?.error).toMatch(/ECONNREFUSED/);
  });
});

describe('hooks', () => {
  it('run without a shell, with the result in DBBACKUP_RESULT_* variables', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const out = path.join(dir, 'env.json');
      const script = `require('fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify({argv: process.argv.slice(1), env: process.env}))`;
      const r = await runHook([process.execPath, '-e', script, 'a b', '$HOME;x'], failed);
      expect(r).toMatchObject({ code: 0, timedOut: false });
      const seen = JSON.parse(await readFile(out, 'utf8')) as { argv: string[]; env: Record<string, string> };
      expect(seen.argv).toEqual(['a b', '$HOME;x']);
      expect(seen.env).toMatchObject({
        DBBACKUP_RESULT_OUTCOME: 'failure',
        DBBACKUP_RESULT_EXIT_CODE: '1',
        DBBACKUP_RESULT_COMMAND: 'backup single',
        DBBACKUP_RESULT_DATABASE: 'shop',
        DBBACKUP_RESULT_SERVER: 'db1:5432',
        DBBACKUP_RESULT_ERROR: 'Cannot connect to PostgreSQL at db1:5432',
        DBBACKUP_RESULT_HINT: 'Check --host and --port.',
        DBBACKUP_RESULT_HOST: 'backup1',
        DBBACKUP_RESULT_BYTES: '',
      });
      expect(JSON.parse(seen.env.DBBACKUP_RESULT_JSON ?? '{}')).toMatchObject({
        id: 'id-1',
        outcome: 'failure',
      });
    } finally {
      await cleanup();
    }
  });

  it('a hook that runs too long is stopped; a missing program is an error, not an exception', async () => {
    const slow = await runHook([process.execPath, '-e', 'setTimeout(() => {}, 60000)'], failed, 300);
    expect(slow.timedOut).toBe(true);
    const missing = await runHook(['/nonexistent/hook'], failed);
    expect(missing.error).toMatch(/ENOENT/);
  });
});
