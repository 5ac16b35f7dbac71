import net from 'node:net';

/**
 * A local TCP endpoint that misbehaves like a half-dead storage server or a black-holing proxy:
 * - `silent` accepts every connection, reads the request and never answers;
 * - `headers` answers every request with `200 OK` headers (a body length it never delivers), sends
 *   the first few bytes of the body, then stalls.
 * Connections are held open until the server stops, so only the client's own timeouts end them.
 */
export interface StallServer {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  port: number;
  /** Connections accepted so far (each attempt of a retried request opens one or reuses one). */
  connections(): number;
  /** Requests seen so far (request lines received). */
  requests(): number;
  stop(): Promise<void>;
}

export type StallMode = 'silent' | 'headers';

export async function startStallServer(mode: StallMode): Promise<StallServer> {
  const sockets = new Set<net.Socket>();
  let connections = 0;
  let requests = 0;
  const server = net.createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let seen = '';
    socket.on('data', (chunk: Buffer) => {
      // Count request lines; the body of an upload is read and dropped (so the client is not blocked
      // on a full socket buffer: it must notice the missing answer itself).
      seen = (seen + chunk.toString('latin1')).slice(-4096);
      const starts = seen.match(/(?:^|\r\n)(GET|PUT|POST|HEAD|DELETE|PATCH) \S+ HTTP\/1\.1\r\n/g);
      if (starts) {
        requests += starts.length;
        seen = '';
        if (mode === 'headers' && !socket.destroyed) {
          socket.write(
            'HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: 100000\r\n' +
              'x-ms-request-id: stall\r\nETag: "stall"\r\nLast-Modified: Mon, 07 Dec 2026 08:00:00 GMT\r\n\r\n' +
              '<?xml version="1.0" encoding="UTF-8"?>\n<',
          );
        }
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    connections: () => connections,
    requests: () => requests,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
