import { PostgresEngine } from '../engines/postgres.js';
import { connectionOptions, type GlobalOptions } from './context.js';

/** The PostgreSQL server of the global options, for the archive commands (pitr, backup base). */
export function pgEngine(g: GlobalOptions): PostgresEngine {
  return new PostgresEngine(connectionOptions(g, 'postgres'));
}
