import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { repoRoot } from './cli.js';
import { loadMySqlScript } from './mysql.js';
import { pgExec } from './pg.js';

export const fixturesDir = path.join(repoRoot, 'tests/fixtures');

/** Loads tests/fixtures/pg-fidelity.sql into `db` (create it first with createPgDatabase). */
export async function loadPgFidelity(db: string): Promise<void> {
  await pgExec(db, await readFile(path.join(fixturesDir, 'pg-fidelity.sql'), 'utf8'));
}

/** Loads tests/fixtures/my-fidelity.sql into `db` (create it first with createMyDatabase). */
export async function loadMyFidelity(db: string): Promise<void> {
  await loadMySqlScript(db, await readFile(path.join(fixturesDir, 'my-fidelity.sql'), 'utf8'));
}
