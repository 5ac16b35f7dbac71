import type { Engine } from '../../catalog/naming.js';
import type { EngineSampler } from './source.js';

/**
 * The sampler of each engine family. A Record over every engine, so a new engine does not compile
 * until it has one; each module (and its driver) is loaded only when a sample of that engine runs.
 */
const SAMPLERS: Record<Engine, () => Promise<EngineSampler>> = {
  postgres: async () => (await import('./postgres.js')).postgresSampler,
  mysql: async () => (await import('./mysql.js')).mysqlSampler,
  mariadb: async () => (await import('./mysql.js')).mysqlSampler,
};

export function samplerFor(engine: Engine): Promise<EngineSampler> {
  return SAMPLERS[engine]();
}
