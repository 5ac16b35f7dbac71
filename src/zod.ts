import { createRequire } from 'node:module';
import type { z } from 'zod';

export type Zod = typeof z;

let zod: Zod | undefined;

/**
 * zod, loaded on first use. With the schemas built from it, it costs ~70-80 ms of start-up, which commands
 * that write metadata (every backup) or read none should not pay. It is zod's CommonJS build, required
 * synchronously so that parsing stays synchronous: every schema must come from here (never
 * `import { z } from 'zod'`), or a command that parses would load zod twice.
 */
export function loadZod(): Zod {
  return (zod ??= (createRequire(import.meta.url)('zod') as typeof import('zod')).z);
}

/** Schemas built on first use: `const schemas = lazySchemas((z) => ({ thing: z.object(…) }))`. */
export function lazySchemas<T>(build: (z: Zod) => T): () => T {
  let built: T | undefined;
  return () => (built ??= build(loadZod()));
}
