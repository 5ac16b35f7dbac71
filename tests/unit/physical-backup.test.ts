import { describe, expect, it } from 'vitest';
import { parseBinlogPos, physicalTool, toolMismatch } from '../../src/backup/physical.js';

describe('backup physical: tools and what mariadb-backup records', () => {
  it('names the package to install for each server family', () => {
    expect(physicalTool('mariadb')).toMatchObject({ names: ['mariadb-backup', 'mariabackup'] });
    expect(physicalTool('mariadb').hint).toMatch(/apt-get install mariadb-backup/);
    expect(physicalTool('mysql')).toMatchObject({ names: ['xtrabackup'] });
    expect(physicalTool('mysql').hint).toMatch(/percona-xtrabackup-80/);
  });

  it('mariadb-backup must share the server major.minor', () => {
    expect(toolMismatch('10.11.19', '10.11.6')).toBeUndefined();
    expect(toolMismatch('10.11.19', '11.4.2')).toMatch(/does not match the server's 11\.4\.2/);
    expect(toolMismatch(null, '10.11.6')).toBeUndefined();
  });

  it("reads xtrabackup_info's binlog_pos, with or without a GTID", () => {
    expect(
      parseBinlogPos("filename 'mysql-bin.000002', position '607', GTID of the last change '0-1-4'"),
    ).toEqual({
      file: 'mysql-bin.000002',
      position: 607,
      gtid: '0-1-4',
    });
    expect(parseBinlogPos("filename 'b.000009', position '4'")).toEqual({
      file: 'b.000009',
      position: 4,
      gtid: '',
    });
    expect(parseBinlogPos('')).toBeNull();
  });
});
