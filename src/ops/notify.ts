import type { IncomingMessage } from 'node:http';
import { errorMessage } from '../errors.js';
import { formatBytes } from '../units.js';
import type { NotifyFormat } from '../config/settings.js';
import type { OperationRecord } from './record.js';

/**
 * Webhook notifications: a JSON POST per URL, in the generic shape or the one Slack, Discord,
 * Microsoft Teams (Workflows / Adaptive Card) or Google Chat expect. Each webhook has a time
 * budget (retries included); a webhook that fails, hangs or answers 500 is a warning for the
 * caller, never a change to the operation's outcome.
 */

export type WebhookFormat = Exclude<NotifyFormat, 'auto'>;

/** The shape a URL's service expects, by its host; anything else gets the generic body. */
export function detectFormat(url: string): WebhookFormat {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'generic';
  }
  const { hostname: host, pathname } = parsed;
  if (host === 'hooks.slack.com') return 'slack';
  if (/(^|\.)discord(app)?\.com$/.test(host) && pathname.startsWith('/api/webhooks')) return 'discord';
  if (/\.webhook\.office\.com$|\.logic\.azure\.com$|\.powerplatform\.com$|^outlook\.office\.com$/.test(host))
    return 'teams';
  if (host === 'chat.googleapis.com') return 'googlechat';
  return 'generic';
}

/** A webhook URL for messages: its origin only (the path of a Slack or Discord hook is its secret). */
export function redactUrl(url: string): string {
  try {
    return `${new URL(url).origin}/…`;
  } catch {
    return '(invalid URL)';
  }
}

export interface Summary {
  title: string;
  facts: Array<[string, string]>;
}

/** What failed (or succeeded), where, the error and its hint, and the host. */
export function summarize(r: OperationRecord): Summary {
  const verdict =
    r.outcome === 'success' ? 'succeeded' : r.outcome === 'interrupted' ? 'was INTERRUPTED' : 'FAILED';
  const facts: Array<[string, string]> = [];
  const add = (name: string, value: string | undefined): void => {
    if (value) facts.push([name, value]);
  };
  add('Database', r.database === undefined ? undefined : `${r.database}${r.server ? ` on ${r.server}` : ''}`);
  if (r.database === undefined) add('Server', r.server);
  add('Destination', r.destination);
  add(
    'Backup',
    r.backup === undefined
      ? undefined
      : `${r.backup}${r.bytes !== undefined ? ` (${formatBytes(r.bytes)})` : ''}`,
  );
  add('Error', r.error);
  add('Hint', r.hint);
  add('Duration', `${r.durationSeconds.toFixed(1)} s`);
  add('Profile', r.profile);
  add('Exit code', String(r.exitCode));
  add('Operation', r.id);
  return { title: `dbbackup ${r.command} ${verdict} on ${r.host}`, facts };
}

function plainText(s: Summary): string {
  return [s.title, ...s.facts.map(([k, v]) => `${k}: ${v}`)].join('\n');
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

export function webhookBody(format: WebhookFormat, record: OperationRecord): unknown {
  const s = summarize(record);
  switch (format) {
    case 'slack':
      return { text: `*${s.title}*\n${s.facts.map(([k, v]) => `*${k}:* ${v}`).join('\n')}` };
    case 'discord':
      // Discord refuses content over 2000 characters.
      return {
        username: 'dbbackup',
        content: truncate(`**${s.title}**\n${s.facts.map(([k, v]) => `**${k}:** ${v}`).join('\n')}`, 2000),
      };
    case 'googlechat':
      return { text: `*${s.title}*\n${s.facts.map(([k, v]) => `${k}: ${v}`).join('\n')}` };
    case 'teams':
      return {
        type: 'message',
        attachments: [
          {
            contentType: 'application/vnd.microsoft.card.adaptive',
            contentUrl: null,
            content: {
              $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
              type: 'AdaptiveCard',
              version: '1.4',
              body: [
                {
                  type: 'TextBlock',
                  text: s.title,
                  weight: 'Bolder',
                  size: 'Medium',
                  wrap: true,
                  color: record.outcome === 'success' ? 'Good' : 'Attention',
                },
                { type: 'FactSet', facts: s.facts.map(([title, value]) => ({ title, value })) },
              ],
            },
          },
        ],
      };
    case 'generic':
      return { event: 'dbbackup.operation', title: s.title, text: plainText(s), record };
  }
}

export interface WebhookResult {
  url: string;
  format: WebhookFormat;
  ok: boolean;
  attempts: number;
  status?: number;
  error?: string;
  elapsedMs: number;
}

/** One POST with `signal`; resolves with the status once the body has been read (and dropped). */
async function post(url: string, body: string, signal: AbortSignal): Promise<number> {
  const { protocol } = new URL(url);
  if (protocol !== 'http:' && protocol !== 'https:') throw new Error(`unsupported URL scheme ${protocol}`);
  const { request } = protocol === 'https:' ? await import('node:https') : await import('node:http');
  return new Promise<number>((resolve, reject) => {
    // No keep-alive agent: an idle socket must not hold the process open after the run.
    const req = request(
      url,
      {
        method: 'POST',
        agent: false,
        signal,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          'user-agent': 'dbbackup',
        },
      },
      (res: IncomingMessage) => {
        res.on('error', reject);
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.resume();
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const RETRYABLE = (status: number): boolean => status === 408 || status === 429 || status >= 500;

export interface SendOptions {
  /** Total time for this webhook, retries included. */
  timeoutMs: number;
  attempts?: number;
  /** Pause before the second attempt; doubles after each. */
  backoffMs?: number;
}

/** Posts `body`, retrying network errors, timeouts, 408, 429 and 5xx with backoff, within the budget. */
export async function sendWebhook(
  url: string,
  format: WebhookFormat,
  body: unknown,
  opts: SendOptions,
): Promise<WebhookResult> {
  const started = Date.now();
  const deadline = started + opts.timeoutMs;
  const text = JSON.stringify(body);
  const attempts = opts.attempts ?? 3;
  let pause = opts.backoffMs ?? 1000;
  let last: { status?: number; error?: string } = {};
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    try {
      const status = await post(url, text, AbortSignal.timeout(remaining));
      if (status >= 200 && status < 300)
        return { url, format, ok: true, attempts: attempt, status, elapsedMs: Date.now() - started };
      last = { status, error: `HTTP ${status}` };
      if (!RETRYABLE(status))
        return { url, format, ok: false, attempts: attempt, ...last, elapsedMs: Date.now() - started };
    } catch (err) {
      const timedOut = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
      last = {
        error: timedOut ? `no answer within ${Math.round(opts.timeoutMs / 1000)} s` : errorMessage(err),
      };
    }
    const wait = Math.min(pause, deadline - Date.now());
    if (attempt === attempts || wait <= 0)
      return { url, format, ok: false, attempts: attempt, ...last, elapsedMs: Date.now() - started };
    await new Promise((resolve) => setTimeout(resolve, wait));
    pause *= 2;
  }
  return { url, format, ok: false, attempts, ...last, elapsedMs: Date.now() - started };
}

/** Every webhook at once; never throws. */
export async function notifyAll(
  urls: readonly string[],
  format: NotifyFormat,
  record: OperationRecord,
  opts: SendOptions,
): Promise<WebhookResult[]> {
  return Promise.all(
    urls.map(async (url) => {
      const shape = format === 'auto' ? detectFormat(url) : format;
      try {
        return await sendWebhook(url, shape, webhookBody(shape, record), opts);
      } catch (err) {
        return { url, format: shape, ok: false, attempts: 0, error: errorMessage(err), elapsedMs: 0 };
      }
    }),
  );
}
