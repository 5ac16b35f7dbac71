/**
 * Incremental and differential base backups on PostgreSQL 17 (npm). pg_basebackup 15 refuses a 17
 * server, so the chain's full is read from the data directory by dbbackup itself
 * (`backup base --from-pgdata`).
 */
import { expect, it } from 'vitest';
import { embeddedChainSuite } from './incremental-embedded.js';
import { cli } from './util.js';

embeddedChainSuite({
  major: 17,
  fullArgs: ['--from-pgdata'],
  extra: ({ server }) => {
    it('a pg_basebackup full is refused (client 15, server 17), naming --from-pgdata', async () => {
      const r = await cli([...server().args(), 'backup', 'base']);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/pg_basebackup 15\.\S+ cannot back up a PostgreSQL 17 server/);
      expect(r.stderr).toContain('--from-pgdata');
    });
  },
});
