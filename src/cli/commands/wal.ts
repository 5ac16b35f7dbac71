import { Command, Option } from 'commander';
import type { EncryptionFlags } from '../../crypto/index.js';
import { DbBackupError, errorMessage } from '../../errors.js';
import { requireIdentity } from '../../pitr/archive.js';
import { analyzeArchive } from '../../pitr/analysis.js';
import { listWal, verifyWal } from '../../pitr/verify.js';
import { lazyUnlockers } from '../../pitr/wal-keys.js';
import { formatBytes } from '../../units.js';
import { parseInteger } from '../numbers.js';
import { globals, out, table } from '../context.js';
import { encryptionFlags, withDecryptOptions, withEncryptOptions } from '../encryption-options.js';
import { walExitCode, walFetch, walProbe, walPush } from '../wal-main.js';
import { parseTimelineChoice, type WalOptions } from '../wal-args.js';
import { openArchiveStore } from '../archive-options.js';

/** The same code the lean entry point returns, through the full CLI's error report. */
async function asWalCommand(command: string, run: () => Promise<string>, verbose?: boolean): Promise<void> {
  try {
    const message = await run();
    if (verbose) out.note(`dbbackup: ${message}`);
  } catch (err) {
    const code = walExitCode(command, err);
    if (err instanceof DbBackupError && err.exitCode === code) throw err;
    throw new DbBackupError(errorMessage(err), {
      exitCode: code,
      hint: err instanceof DbBackupError ? err.hint : undefined,
      details: err instanceof DbBackupError ? err.details : [],
      cause: err,
    });
  }
}

function walOptions(cmd: Command): Command {
  return cmd
    .option('--archive <dir|uri>', 'the WAL archive')
    .option('--env-file <file>', 'KEY=VALUE file with cloud credentials (mode 0600)')
    .option('--verbose', 'say what was done on stderr');
}

export function walCommand(): Command {
  const wal = new Command('wal').description(
    'WAL archive commands: push and fetch (for archive_command / restore_command), list, verify',
  );
  const push = (name: string, hidden = false) =>
    withEncryptOptions(walOptions(wal.command(name, { hidden })))
      .description(
        'archive_command: store one WAL file (%p) in the archive; exit 0 only once it is durable there (or already there, identical)',
      )
      .argument('<path>', 'the WAL file (%p)')
      .option('--async', 'hand the file to a long-lived uploader through --spool-dir')
      .option('--spool-dir <dir>', 'spool directory for --async')
      .option('--async-timeout <seconds>', 'how long to wait for the uploader (default 60)')
      .action(async (file: string, opts: WalOptions) =>
        asWalCommand('push', () => walPush(file, opts), opts.verbose),
      );
  push('push');
  // The reference tool's spelling.
  push('archive');
  withDecryptOptions(walOptions(wal.command('fetch')))
    .description(
      'restore_command: fetch one WAL file (%f) into %p; exit 1 only when it is not in the archive, 128 when it is there but unusable (recovery stops)',
    )
    .argument('<name>', 'the WAL file name (%f)')
    .argument('<dest>', 'where to write it (%p)')
    .option('--prefetch <n>', 'fetch the next n segments ahead into --spool-dir')
    .option('--spool-dir <dir>', 'spool directory for --prefetch')
    .action(async (name: string, dest: string, opts: WalOptions & { prefetch?: unknown }) => {
      if (opts.prefetch !== undefined)
        opts.prefetch = parseInteger('--prefetch', String(opts.prefetch), { min: 0, max: 64 });
      await asWalCommand('fetch', () => walFetch(name, dest, opts), opts.verbose);
    });
  withEncryptOptions(walOptions(wal.command('probe', { hidden: true })))
    .argument('<mode>', 'push or fetch')
    .action(async (mode: string, opts: WalOptions) =>
      asWalCommand('probe', () => walProbe(mode, opts), opts.verbose),
    );

  withDecryptOptions(wal.command('list'))
    .description(
      'List the archive: contiguous segment ranges per timeline, timelines and their branch points',
    )
    .option('--archive <dir|uri>', 'the WAL archive')
    .option('--env-file <file>', 'credentials for a cloud archive')
    .option('--json', 'print as JSON')
    .action(
      async (
        opts: EncryptionFlags & { archive?: string; envFile?: string; json?: boolean },
        cmd: Command,
      ) => {
        const storage = await openArchiveStore(globals(cmd), opts.archive, opts.envFile);
        const identity = await requireIdentity(storage);
        const analysis = await analyzeArchive(
          storage,
          identity,
          'latest',
          lazyUnlockers(encryptionFlags(opts)),
        );
        const listing = listWal(analysis);
        if (opts.json) {
          out.json({ location: storage.location, identity, ...listing });
          return;
        }
        out.line(
          `WAL in ${storage.location} (cluster ${identity.systemIdentifier}, ${identity.walSegmentSize / 1048576} MiB segments):`,
        );
        const rows = listing.runs.map((r) => [
          String(r.timeline),
          r.first,
          r.last,
          String(r.count),
          formatBytes(r.bytes),
          r.newest.toISOString().replace('T', ' ').slice(0, 19),
        ]);
        for (const l of table(['TIMELINE', 'FIRST', 'LAST', 'SEGMENTS', 'STORED', 'NEWEST PUSH (UTC)'], rows))
          out.line(`  ${l}`);
        for (const t of listing.timelines)
          out.line(
            `  timeline ${t.timeline} branched from ${t.parent ?? '?'} at ${t.switchLsn ?? '?'}${t.reason ? ` (${t.reason})` : ''}`,
          );
        if (listing.partials.length)
          out.line(`  partial segments (ends of old timelines): ${listing.partials.join(', ')}`);
        if (listing.conflicts.length)
          out.line(`  CONFLICT: stored twice with different content: ${listing.conflicts.join(', ')}`);
        if (listing.others.length)
          out.line(`  ${listing.others.length} other object(s) under wal/ (not WAL)`);
      },
    );

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
  return wal;
}
