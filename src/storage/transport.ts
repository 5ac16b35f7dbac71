import { AsyncLocalStorage } from 'node:async_hooks';
import type http from 'node:http';
import type https from 'node:https';
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Socket } from 'node:net';

/**
 * The network side every cloud backend shares: connect/idle timeouts on each socket, bounded
 * attempts per request, and one switch that cuts every storage connection when the command is
 * interrupted. The SDKs' own retry loops stay (they know which answers are transient), but with
 * these sockets no attempt can wait forever: an endpoint that accepts a connection and never
 * answers (or answers the headers and then stalls) fails each attempt after the idle time.
 */

/** `--cloud-timeout` default, in seconds: how long a request may wait without a byte moving. */
export const DEFAULT_CLOUD_TIMEOUT_S = 30;
/** A TCP (and TLS) connection must be up within this, or the timeout if it is shorter. */
const MAX_CONNECT_MS = 10_000;
/** Attempts per request (the first and two retries), the same for every backend. */
export const REQUEST_ATTEMPTS = 3;
/** The longest pause between two attempts, before jitter. */
export const MAX_BACKOFF_MS = 8_000;
/** Once the command is interrupted, clean-up requests get at most this long each. */
const CLEANUP_IDLE_MS = 3_000;

export interface RequestLimits {
  connectMs: number;
  /** No byte moving for this long while one is expected: the attempt fails. */
  idleMs: number;
  attempts: number;
  /** The longest pause before retry n (1-based), jitter included; the SDKs are set to stay within it. */
  backoffMs: (n: number) => number;
}

export function requestLimits(timeoutSeconds: number = DEFAULT_CLOUD_TIMEOUT_S): RequestLimits {
  const idleMs = timeoutSeconds * 1000;
  return {
    connectMs: Math.min(idleMs, MAX_CONNECT_MS),
    idleMs,
    attempts: REQUEST_ATTEMPTS,
    backoffMs: (n) => Math.min(1000 * 2 ** n, MAX_BACKOFF_MS) + 1000,
  };
}

/**
 * The longest one request can take against an endpoint that never answers: every attempt waits
 * the full idle time, with the longest pause between attempts. Commands make several requests in
 * a row only after one succeeded, so this bounds how long a dead endpoint keeps a command waiting.
 */
export function worstCaseMs(limits: RequestLimits): number {
  let total = limits.attempts * (limits.connectMs + limits.idleMs);
  for (let n = 1; n < limits.attempts; n++) total += limits.backoffMs(n);
  return total;
}

/** An attempt that saw no byte move for too long; SDKs retry it like any network timeout. */
export class IdleTimeoutError extends Error {
  readonly code = 'ETIMEDOUT';
  constructor(what: string, ms: number) {
    super(`no answer from ${what} within ${formatSeconds(ms)}`);
    this.name = 'TimeoutError';
  }
}

/** The command was interrupted: not retried by any SDK (an abort). */
export class TransferInterrupted extends Error {
  readonly code = 'ECANCELED';
  constructor() {
    super('interrupted');
    this.name = 'AbortError';
  }
}

function formatSeconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}

/** The request a socket currently carries (Node's own link; absent while the socket is free). */
interface SocketWithRequest extends Socket {
  _httpMessage?: { writableEnded?: boolean } | null;
}

/**
 * Whether a silent socket is simply waiting on us, not on the server: a download the reader is
 * not consuming (pg_restore building an index: the socket is paused by backpressure), or an
 * upload whose body producer is slow (the dump is between tables; everything written was sent).
 */
function waitingOnUs(socket: SocketWithRequest): boolean {
  if (socket.isPaused()) return true;
  const request = socket._httpMessage;
  return Boolean(request && request.writableEnded === false && socket.writableLength === 0);
}

const live = new Set<Socket>();
let stopped = false;

/**
 * Watch one socket: connected within `connectMs`, then never silent for `idleMs` while a request
 * waits on the server. Progress is read from the socket's byte counters on a timer rather than
 * with socket.setTimeout, which HTTP clients (node-fetch under the GCS SDK) reset to 0.
 */
function watch(
  socket: Socket,
  limits: RequestLimits,
  label: string,
  seen: (e: IdleTimeoutError) => void,
): void {
  const idleMs = stopped ? Math.min(limits.idleMs, CLEANUP_IDLE_MS) : limits.idleMs;
  const connectMs = Math.min(limits.connectMs, idleMs);
  const started = Date.now();
  const fail = (err: IdleTimeoutError): void => {
    seen(err);
    socket.destroy(err);
  };
  let moved = 0;
  let lastMove = started;
  const timer = setInterval(
    () => {
      const now = Date.now();
      if (socket.connecting) {
        if (now - started >= connectMs) fail(new IdleTimeoutError(`${label} (connecting)`, connectMs));
        return;
      }
      const bytes = socket.bytesRead + socket.bytesWritten;
      const s = socket as SocketWithRequest;
      // A free keep-alive socket, or one waiting on us, is not the server's fault.
      if (bytes !== moved || !s._httpMessage || waitingOnUs(s)) {
        moved = bytes;
        lastMove = now;
      } else if (now - lastMove >= idleMs) fail(new IdleTimeoutError(label, idleMs));
    },
    Math.max(50, Math.min(1000, Math.floor(Math.min(connectMs, idleMs) / 8))),
  );
  timer.unref();
  live.add(socket);
  socket.once('close', () => {
    clearInterval(timer);
    live.delete(socket);
  });
}

type CreateConnection = (
  options: object,
  callback?: (err: Error | null, socket?: Duplex) => void,
) => Duplex | undefined;

function watched<A extends http.Agent>(
  agent: A,
  limits: RequestLimits,
  label: string,
  seen: (e: IdleTimeoutError) => void,
): A {
  const inner = (agent as unknown as { createConnection: CreateConnection }).createConnection.bind(agent);
  (agent as unknown as { createConnection: CreateConnection }).createConnection = (options, callback) => {
    // After an interrupt only clean-up may open connections: an SDK's retry of a request that was
    // just cut would otherwise wait out its pauses and timeouts again.
    // (The agent's callback form: the request fails with this error, as with a refused connection.)
    if (stopped && !cleanupContext.getStore()) {
      process.nextTick(() => callback?.(new TransferInterrupted()));
      return undefined;
    }
    const socket = inner(options, callback) as Socket;
    watch(socket, limits, label, seen);
    return socket;
  };
  return agent;
}

export interface Agents {
  http: http.Agent;
  https: https.Agent;
  /** The agent for a URL's protocol. */
  for(url: string | URL): http.Agent;
  /** The last attempt that timed out since the previous call (network errors name it poorly). */
  takeTimeout(): IdleTimeoutError | undefined;
  /** Close every socket (a failed upload's half-sent request would keep the process alive). */
  destroy(): void;
}

/** Keep-alive agents whose sockets obey `limits`; `label` names the endpoint in timeout messages. */
export function timedAgents(limits: RequestLimits, label: string): Agents {
  let last: IdleTimeoutError | undefined;
  const seen = (e: IdleTimeoutError): void => void (last = e);
  // Loaded here, not at the top: node:http pulls in Node's bundled undici (~50 ms of start-up), and
  // every command imports this module for the interrupt switch below, cloud or not.
  const { Agent: HttpAgent } = process.getBuiltinModule('node:http');
  const { Agent: HttpsAgent } = process.getBuiltinModule('node:https');
  const agents: Agents = {
    http: watched(new HttpAgent({ keepAlive: true }), limits, label, seen),
    https: watched(new HttpsAgent({ keepAlive: true }), limits, label, seen),
    for(url: string | URL): http.Agent {
      return new URL(url).protocol === 'http:' ? agents.http : agents.https;
    },
    takeTimeout() {
      const e = last;
      last = undefined;
      return e;
    },
    destroy() {
      agents.http.destroy();
      agents.https.destroy();
    },
  };
  return agents;
}

/**
 * The command was interrupted (SIGINT/SIGTERM): every storage connection open now is cut, so
 * requests in flight fail at once instead of waiting out their timeouts and retries; requests
 * made afterwards (deleting what the command left) still run, with a short idle limit.
 */
export function interruptTransfers(): void {
  stopped = true;
  for (const socket of live) socket.destroy(new TransferInterrupted());
}

const cleanupContext = new AsyncLocalStorage<true>();

/**
 * Run clean-up (removing what an interrupted command left, aborting its multipart upload): its
 * requests may still connect after an interrupt, each with a short idle limit.
 */
export function cleanupRequests<T>(fn: () => Promise<T>): Promise<T> {
  return cleanupContext.run(true, fn);
}

/** Whether interruptTransfers() was called in this process. */
export function transfersInterrupted(): boolean {
  return stopped;
}

/** A pause before retry n, with jitter; rejects instead when the command has been interrupted. */
export async function backoff(limits: RequestLimits, n: number): Promise<void> {
  if (stopped) throw new TransferInterrupted();
  await sleep(limits.backoffMs(n) * (0.5 + Math.random() / 2));
  if (stopped) throw new TransferInterrupted();
}

/** One line for a timed-out request: what did not answer, for how long, how often it was tried. */
export function timeoutText(timeout: IdleTimeoutError, limits: RequestLimits): string {
  return `${timeout.message} (${limits.attempts} attempts at most)`;
}

export const TIMEOUT_HINT =
  'Check that the endpoint is the right one and reachable (a firewall or proxy that accepts connections and drops them looks like this); --cloud-timeout <seconds> changes how long each attempt waits.';

/**
 * Whether an error is an attempt that ran out of time. The SDKs already retried it as often as
 * REQUEST_ATTEMPTS says; a part or block loop on top must not multiply those waits.
 */
export function isTimeout(err: unknown): boolean {
  const e = typeof err === 'object' && err !== null ? (err as { code?: unknown; name?: unknown }) : {};
  return e.code === 'ETIMEDOUT' || e.name === 'TimeoutError';
}
