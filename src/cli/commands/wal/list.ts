import type { Command } from 'commander';
import type { EncryptionFlags } from '../../../crypto/index.js';
import { requireIdentity } from '../../../pitr/archive.js';
import { analyzeArchive } from '../../../pitr/analysis.js';
import { listWal } from '../../../pitr/verify.js';
import { lazyUnlockers } from '../../../pitr/wal-keys.js';
import { formatBytes } from '../../../units.js';
import { globals, out, table } from '../../context.js';
import { encryptionFlags, withDecryptOptions } from '../../encryption-options.js';
import { openArchiveStore } from '../../archive-options.js';

/** `wal list`: segment ranges per timeline. */
export function addListCommand(wal: Command): void {
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
}
