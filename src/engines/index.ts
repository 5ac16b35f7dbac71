import type { ConnectionOptions } from './connection.js';
import type { DatabaseEngine } from './engine.js';

/**
 * The only place that knows which engine classes exist. Each engine module loads its driver when it
 * is evaluated (pg; mysql2 with its ~90 files), so only the engine a command opens is loaded.
 */
export async function openEngine(options: ConnectionOptions): Promise<DatabaseEngine> {
  if (options.engine === 'postgres') {
    const { PostgresEngine } = await import('./postgres.js');
    return new PostgresEngine(options);
  }
  const { MysqlEngine } = await import('./mysql.js');
  return new MysqlEngine(options);
}
