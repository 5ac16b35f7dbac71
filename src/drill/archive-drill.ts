import { UsageError } from '../errors.js';
import { takeRunLock } from '../locks/run-lock.js';
import { requireIdentity } from '../pitr/archive.js';
import { archiveKind, requireBinlogIdentity } from '../pitr/binlog/identity.js';
import { serverOsUser } from '../os/user.js';
import { drillBaseBackup } from './pg-base-drill.js';
import { drillPhysicalBackup } from './physical-drill.js';
import type { ArchiveDrill, ArchiveDrillInput } from './pitr-common.js';

/**
 * `drill … --archive`: a point-in-time backup of a WAL archive (PostgreSQL base backup) or of a
 * binlog archive (MariaDB physical backup and its incremental chain), whichever the archive is.
 */
export async function drillArchive(
  i: Omit<ArchiveDrillInput, 'osUser' | 'onSubject'> & {
    osUserName?: string;
    onSubject: ArchiveDrillInput['onSubject'];
  },
): Promise<ArchiveDrill> {
  const kind = await archiveKind(i.storage);
  if (!kind)
    throw new UsageError(
      `${i.storage.location} is not a dbbackup archive (no archive.json)`,
      'Give the WAL archive of "pitr enable" or the binlog archive of "binlog archive".',
    );
  const osUser = await serverOsUser(i.osUserName, kind === 'binlog' ? 'mysql' : 'postgres');
  const onSubject: ArchiveDrillInput['onSubject'] = async (subject) => {
    await takeRunLock({
      family: 'drill',
      parts: [subject.location],
      description: `drill of ${subject.location}`,
    });
    await i.onSubject(subject);
  };
  if (kind === 'binlog')
    return drillPhysicalBackup({ ...i, osUser, onSubject, identity: await requireBinlogIdentity(i.storage) });
  return drillBaseBackup({ ...i, osUser, onSubject, identity: await requireIdentity(i.storage) });
}
