import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A local HTTP server standing in for webhook services. What it does depends on the path:
 * `/hang…` never answers, `/status/NNN…` answers NNN, anything else 200. Every request is recorded.
 */

export interface Received {
  path: string;
  method: string;
  headers: IncomingHttpHeaders;
  body: unknown;
  at: number;
}

export interface WebhookServer {
  url: (path: string) => string;
  received: Received[];
  /** Resolves once `n` requests whose path starts with `prefix` have arrived. */
  waitFor: (prefix: string, n: number, timeoutMs?: number) => Promise<Received[]>;
  close: () => Promise<void>;
}

export async function startWebhookServer(): Promise<WebhookServer> {
  const received: Received[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // kept as text
      }
      const path = req.url ?? '/';
      received.push({ path, method: req.method ?? '', headers: req.headers, body, at: Date.now() });
      if (path.startsWith('/hang')) return; // never answers
      const status = /^\/status\/(\d{3})/.exec(path);
      res.writeHead(status ? Number(status[1]) : 200, { 'content-type': 'text/plain' });
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: (path) => `http://127.0.0.1:${port}${path}`,
    received,
    async waitFor(prefix, n, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const got = received.filter((r) => r.path.startsWith(prefix));
        if (got.length >= n) return got;
        if (Date.now() > deadline) throw new Error(`only ${got.length} of ${n} requests to ${prefix}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
