/**
 * Incremental and differential base backups on PostgreSQL 12 (npm), the oldest server they
 * support: the non-exclusive backup runs through the older pg_start_backup/pg_stop_backup, and
 * pg_basebackup's backup_manifest does not exist yet, so the chain's full is read from the data
 * directory (`backup base --from-pgdata`).
 */
import { expect, it } from 'vitest';
import { embeddedChainSuite } from './incremental-embedded.js';
import { cli } from './util.js';

embeddedChainSuite({
  major: 12,
  fullArgs: ['--from-pgdata'],
  extra: ({ server }) => {
    it('a pg_basebackup full is refused before anything is stored, naming --from-pgdata', async () => {
      const r = await cli([...server().args(), 'backup', 'base']);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('PostgreSQL 12 is too old for a base backup through pg_basebackup');
      expect(r.stderr).toContain('--from-pgdata');
    });
  },
});
