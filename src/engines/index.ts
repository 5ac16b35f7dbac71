import type { ConnectionOptions } from './connection.js';
import type { DatabaseEngine } from './engine.js';
import { MysqlEngine } from './mysql.js';
import { PostgresEngine } from './postgres.js';

/** The only place that knows which engine classes exist. */
export function openEngine(options: ConnectionOptions): DatabaseEngine {
  return options.engine === 'postgres' ? new PostgresEngine(options) : new MysqlEngine(options);
}
