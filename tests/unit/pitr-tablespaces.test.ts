import { describe, expect, it } from 'vitest';
import { baseBackupCommand } from '../../src/pitr/base-protocol.js';
import { parseTablespaceMap } from '../../src/pitr/tablespaces.js';

describe('restore pitr --tablespace-map', () => {
  it('takes OID=DIR and OLDDIR=NEWDIR, directories resolved', () => {
    const m = parseTablespaceMap(['16385=/srv/ts/a/', '/data/old/b=/srv/ts/b']);
    expect([...m]).toEqual([
      ['16385', '/srv/ts/a'],
      ['/data/old/b', '/srv/ts/b'],
    ]);
  });

  it('refuses what it cannot place: no "=", a relative directory, a line break', () => {
    for (const bad of ['16385', '16385=relative/dir', 'old=/srv/x', '=/srv/x', '16385=/srv/a\nb'])
      expect(() => parseTablespaceMap([bad]), bad).toThrow(/--tablespace-map/);
  });
});

describe('BASE_BACKUP command', () => {
  it('quotes the label and asks for the manifest and the tablespace map, WAL left to the archive', () => {
    expect(baseBackupCommand("dbbackup base_1 it's")).toBe(
      "BASE_BACKUP (LABEL 'dbbackup base_1 it''s', CHECKPOINT 'fast', WAIT true, MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C', TABLESPACE_MAP true)",
    );
  });
});
