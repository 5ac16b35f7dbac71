import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  findPhysicalTool,
  missingPhysicalTool,
  parseBinlogPos,
  physicalBackupCommand,
  physicalTool,
  serverOptionsOf,
  toolMismatch,
  toolVersionOf,
} from '../../src/backup/physical.js';
import { xtrabackupPackage } from '../../src/engines/flavor.js';
import { MissingToolError } from '../../src/errors.js';
import { ExitCode } from '../../src/exit-codes.js';
import { serverFlavor } from '../../src/pitr/binlog/server.js';

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

  it('tells MariaDB from the MySQL family by @@version and @@version_comment', () => {
    expect(serverFlavor('10.11.19-MariaDB-0+deb12u1', 'Debian 12')).toBe('mariadb');
    expect(serverFlavor('11.4.2-MariaDB-ubu2404', 'mariadb.org binary distribution')).toBe('mariadb');
    // A MariaDB built with its version string changed still says so in its comment.
    expect(serverFlavor('8.0.36', 'mariadb.org binary distribution')).toBe('mariadb');
    expect(serverFlavor('8.0.36', 'MySQL Community Server - GPL')).toBe('mysql');
    expect(serverFlavor('8.4.0-commercial', 'MySQL Enterprise Server - Commercial')).toBe('mysql');
    expect(serverFlavor('8.0.35-27', 'Percona Server (GPL), Release 27, Revision 2f8eeab2')).toBe('mysql');
  });

  it('builds the same backup command line for mariadb-backup and xtrabackup, the program per flavour', () => {
    const o = { scratch: '/tmp/xb', lsnDir: '/tmp/xb/lsn' };
    const maria = physicalBackupCommand('mariadb', o);
    const mysql = physicalBackupCommand('mysql', { ...o, serverVersion: '8.0.36' });
    expect(maria.names).toEqual(['mariadb-backup', 'mariabackup']);
    expect(mysql.names).toEqual(['xtrabackup']);
    const full = ['--backup', '--stream=xbstream', '--target-dir=/tmp/xb', '--extra-lsndir=/tmp/xb/lsn'];
    expect(maria.args).toEqual(full);
    expect(mysql.args).toEqual(full);
    expect(physicalBackupCommand('mysql', { ...o, incrementalLsn: '123456' }).args).toEqual([
      ...full,
      '--incremental-lsn=123456',
    ]);
    expect(physicalBackupCommand('mariadb', { ...o, incrementalLsn: '123456' }).args).toEqual([
      ...full,
      '--incremental-lsn=123456',
    ]);
    expect(mysql.hint).toMatch(/apt-get install percona-xtrabackup-80/);
  });

  it('names the XtraBackup package of the server series', () => {
    expect(xtrabackupPackage('8.0.36')).toBe('percona-xtrabackup-80');
    expect(xtrabackupPackage('8.4.3')).toBe('percona-xtrabackup-84');
    expect(xtrabackupPackage('5.7.44')).toBe('percona-xtrabackup-24');
    expect(xtrabackupPackage('9.1.0')).toBe('percona-xtrabackup');
    expect(xtrabackupPackage(undefined)).toBe('percona-xtrabackup-80');
  });

  it('a missing xtrabackup is one line naming the package, exit code Failure', async () => {
    const e = missingPhysicalTool('mysql', '8.4.3');
    expect(e).toBeInstanceOf(MissingToolError);
    expect(e.message).toBe(
      'xtrabackup was not found: physical backups of MySQL need the package percona-xtrabackup-84',
    );
    expect(e.message).not.toMatch(/\n/);
    expect(e.exitCode).toBe(ExitCode.Failure);
    expect(missingPhysicalTool('mariadb').message).toMatch(/need the package mariadb-backup$/);
    // And findPhysicalTool throws it when the program is not on PATH.
    const empty = await mkdtemp(path.join(tmpdir(), 'dbb-nopath-'));
    const saved = process.env.PATH;
    process.env.PATH = empty;
    try {
      await expect(findPhysicalTool('mysql', '8.0.36')).rejects.toMatchObject({
        message: 'xtrabackup was not found: physical backups of MySQL need the package percona-xtrabackup-80',
        exitCode: ExitCode.Failure,
      });
    } finally {
      process.env.PATH = saved;
      await rm(empty, { recursive: true, force: true });
    }
  });

  it("reads the server version each backup program was built for, and compares it with the server's", () => {
    const xb =
      'xtrabackup version 8.0.35-30 based on MySQL server 8.0.35 Linux (x86_64) (revision id: 6beb4b49)';
    expect(toolVersionOf(xb)).toBe('8.0.35');
    expect(
      toolVersionOf('mariadb-backup based on MariaDB server 10.11.19-MariaDB debian-linux-gnu (x86_64)'),
    ).toBe('10.11.19');
    expect(toolMismatch('8.0.35', '8.0.36', 'xtrabackup')).toBeUndefined();
    expect(toolMismatch('8.0.35', '8.4.3', 'xtrabackup')).toBe(
      "xtrabackup 8.0.35 does not match the server's 8.4.3 (they must share major.minor)",
    );
  });

  it('keeps the InnoDB settings a server has (SHOW VARIABLES rows), as option names', () => {
    expect(
      serverOptionsOf([
        { Variable_name: 'innodb_page_size', Value: '16384' },
        { Variable_name: 'innodb_data_file_path', Value: 'ibdata1:12M:autoextend' },
        { Variable_name: 'innodb_checksum_algorithm', Value: '' },
      ]),
    ).toEqual({ 'innodb-page-size': '16384', 'innodb-data-file-path': 'ibdata1:12M:autoextend' });
  });
});
