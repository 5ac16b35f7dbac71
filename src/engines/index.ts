import { createRequire } from 'node:module';
import type { ConnectionOptions } from './connection.js';
import type { DatabaseEngine } from './engine.js';

type PostgresModule = typeof import('./postgres.js');
type MysqlModule = typeof import('./mysql.js');

// Each engine module loads its driver when it is evaluated (pg; mysql2 with its ~90 files), start-up time
// that every command used to pay for both engines. Only the engine a command opens is loaded, on first use,
// synchronously — require() of an ES module (Node >= 22.12; this graph has no top-level await) — so that
// openEngine() stays synchronous for its callers. Where require() cannot load ES modules (Node < 22.12) or
// this file runs from its TypeScript source (vitest, tsx), both engines are imported up front, as before.
const requireModule = createRequire(import.meta.url);
const preloaded: { pg: PostgresModule; my: MysqlModule } | null =
  process.features.require_module && !import.meta.url.endsWith('.ts')
    ? null
    : { pg: await import('./postgres.js'), my: await import('./mysql.js') };

/** The only place that knows which engine classes exist. */
export function openEngine(options: ConnectionOptions): DatabaseEngine {
  if (options.engine === 'postgres') {
    const { PostgresEngine } = preloaded?.pg ?? (requireModule('./postgres.js') as PostgresModule);
    return new PostgresEngine(options);
  }
  const { MysqlEngine } = preloaded?.my ?? (requireModule('./mysql.js') as MysqlModule);
  return new MysqlEngine(options);
}
