import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requestLimits, timedAgents, worstCaseMs } from '../../src/storage/transport.js';

/**
 * The idle rule of the storage sockets: a request fails when the server owes bytes and sends none
 * for the idle time, never because dbbackup itself is slow to read (a restore building an index)
 * or to produce (a dump between two tables).
 */
let server: http.Server;
let base: string;
const BODY = 8 * 1024 * 1024;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    if (req.url === '/download') {
      res.writeHead(200, { 'content-length': String(BODY) });
      res.end(Buffer.alloc(BODY, 1));
    } else if (req.url === '/upload') {
      let n = 0;
      req.on('data', (c: Buffer) => (n += c.length));
      req.on('end', () => res.end(String(n)));
    } else if (req.url === '/stall') {
      res.writeHead(200, { 'content-length': '100' });
      res.write('x'); // and nothing more
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const limits = requestLimits(1);

function get(path: string, agent: http.Agent): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => http.get(`${base}${path}`, { agent }, resolve).on('error', reject));
}

describe('timed storage sockets', () => {
  it('a download whose reader pauses for three idle times completes', async () => {
    const agents = timedAgents(limits, base);
    const res = await get('/download', agents.http);
    let got = 0;
    res.once('data', (c: Buffer) => (got += c.length));
    await new Promise((r) => res.once('data', r));
    res.pause();
    await sleep(3_000);
    for await (const c of res) got += (c as Buffer).length;
    expect(got).toBeGreaterThan(BODY / 2);
    agents.destroy();
  });

  it('an upload whose producer is silent for three idle times completes', async () => {
    const agents = timedAgents(limits, base);
    const answer = new Promise<string>((resolve, reject) => {
      const req = http.request(`${base}/upload`, { method: 'PUT', agent: agents.http }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve(text));
      });
      req.on('error', reject);
      req.write(Buffer.alloc(1000));
      void sleep(3_000).then(() => req.end(Buffer.alloc(1000)));
    });
    expect(await answer).toBe('2000');
    agents.destroy();
  });

  it('a body the server stops sending fails after the idle time, naming the endpoint', async () => {
    const agents = timedAgents(limits, base);
    const res = await get('/stall', agents.http);
    const started = Date.now();
    const err = await new Promise<Error>((resolve) => {
      res.on('error', resolve);
      res.resume();
    });
    expect(Date.now() - started).toBeLessThan(worstCaseMs(limits));
    expect(agents.takeTimeout()?.message).toBe(`no answer from ${base} within 1 s`);
    expect(err).toBeInstanceOf(Error);
    agents.destroy();
  });
});
