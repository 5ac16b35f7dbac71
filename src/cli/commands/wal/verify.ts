import { Command, Option } from 'commander';
import type { EncryptionFlags } from '../../../crypto/index.js';
import { DbBackupError } from '../../../errors.js';
import { requireIdentity } from '../../../pitr/archive.js';
import { verifyWal } from '../../../pitr/verify.js';
import { lazyUnlockers } from '../../../pitr/wal-keys.js';
import { globals, out } from '../../context.js';
import { encryptionFlags, withDecryptOptions } from '../../encryption-options.js';
import { parseTimelineChoice } from '../../wal-args.js';
import { openArchiveStore } from '../../archive-options.js';

/** `wal verify`: every base backup's WAL chain, without gaps. */
export function addVerifyCommand(wal: Command): void {
  withDecryptOptions(wal.command('verify'))
    .description(
      'Prove the archive restorable: from each base backup, the continuous WAL chain along the timeline path (exit 1 on a gap); --deep reads and checks every segment',
    )
    .option('--archive <dir|uri>', 'the WAL archive')
    .option('--env-file <file>', 'credentials for a cloud archive')
    .option('--deep', 'read, decrypt, decompress and check every segment against its checksum and header')
    .option('--base <name>', 'only this base backup')
    .addOption(
      new Option('--target-timeline <tli>', 'timeline path to follow: current, latest (default) or a number'),
    )
    .option('--json', 'print as JSON')
    .action(
      async (
        opts: EncryptionFlags & {
          archive?: string;
          envFile?: string;
          deep?: boolean;
          base?: string;
          targetTimeline?: string;
          json?: boolean;
        },
        cmd: Command,
      ) => {
        const storage = await openArchiveStore(globals(cmd), opts.archive, opts.envFile);
        const identity = await requireIdentity(storage);
        const { report } = await verifyWal(storage, identity, {
          timeline: parseTimelineChoice(opts.targetTimeline, 'latest'),
          deep: Boolean(opts.deep),
          unlockers: lazyUnlockers(encryptionFlags(opts)),
          base: opts.base,
        });
        if (opts.json) out.json({ location: storage.location, ...report });
        else {
          for (const b of report.bases) {
            if (b.state === 'incomplete' || b.state === 'corrupt') {
              out.line(`${b.name}: ${b.state}: ${b.detail}`);
              continue;
            }
            const until = b.last
              ? `restorable from its end through ${b.last} (pushed ${b.until ?? '?'})`
              : b.detail;
            out.line(
              `${b.name}: ${b.state === 'valid' ? until : b.detail}; timelines ${b.timelinePath ?? '?'}`,
            );
            if (b.gap)
              out.line(
                `  GAP: after ${b.gap.lastBefore ?? '(nothing)'}, ${b.gap.missing} is missing; WAL resumes at ${b.gap.resumesAt}`,
              );
            for (const d of b.divergences)
              out.line(
                `  FORK: timeline ${d.timeline} went on archiving (up to ${d.parentNewest}) after timeline ${d.child} branched from it at ${d.switchAt}: restore with an explicit --target-timeline`,
              );
          }
          if (report.deep)
            out.line(
              `Deep check: ${report.deep.checked} objects read, ${report.deep.damaged.length} damaged`,
            );
          for (const f of report.failures) out.line(`FAIL: ${f}`);
          if (!report.failures.length) out.line('OK: every base backup has its WAL, without gaps.');
        }
        if (report.failures.length)
          throw new DbBackupError(`WAL archive verification failed: ${report.failures[0]}`, {
            hint: 'Point-in-time recovery cannot pass a gap; take a new base backup after it (dbbackup backup base).',
          });
      },
    );
}
