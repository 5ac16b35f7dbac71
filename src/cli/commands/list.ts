import { Command } from 'commander';
import { listBackups, type CatalogEntry } from '../../catalog/listing.js';
import { drillSummaries, type DrillSummary } from '../../catalog/drill-history.js';
import type { Storage } from '../../storage/storage.js';
import { openEngine } from '../../engines/index.js';
import { formatBytes } from '../../pipeline/progress.js';
import { openStore } from '../../storage/uri.js';
import {
  backupDir,
  cloudSettings,
  cloudUri,
  connectionOptions,
  explicitEngine,
  globals,
  out,
  requireDirectory,
  table,
} from '../context.js';

/** Marks the reference tool's backups in the NAME column; explained under the table. */
export const REFERENCE_MARK = ' [ref]';

/** A listing's entries with their drill summaries (issue 17): "last proven restorable". */
export async function withDrills(
  storage: Storage,
  entries: CatalogEntry[],
): Promise<Array<CatalogEntry & { drills?: DrillSummary }>> {
  const drills = await drillSummaries(
    storage,
    entries.map((e) => e.key),
  );
  return entries.map((e) => ({ ...e, drills: drills.get(e.key) }));
}

/** The PROVEN column: when the last passed drill ran (and its RTO); a later failed drill says so. */
function provenCell(d: DrillSummary | undefined): string {
  if (!d?.lastDrill) return 'never drilled';
  const day = (iso: string): string => iso.replace('T', ' ').slice(0, 16);
  const proven = d.lastProven
    ? `${day(d.lastProven.time)} (RTO ${d.lastProven.restoreSeconds?.toFixed(1) ?? '?'} s)`
    : 'never';
  return d.lastDrill.outcome === 'passed'
    ? proven
    : `${proven}; last drill ${d.lastDrill.outcome} ${day(d.lastDrill.time)}`;
}

export function printBackupList(
  location: string,
  entries: Array<CatalogEntry & { drills?: DrillSummary }>,
  json: boolean,
  verified = false,
): void {
  if (json) {
    out.json({ location, checked: verified ? 'sha256' : 'size', backups: entries });
    return;
  }
  if (!entries.length) {
    out.line(`No backups in ${location}`);
    return;
  }
  // The drill column only where a drill ever ran here: a column of "never drilled" says nothing.
  const drilled = entries.some((e) => e.drills?.lastDrill);
  const rows = entries.map((e) => [
    e.producer === 'reference' ? `${e.key}${REFERENCE_MARK}` : e.key,
    e.database ?? '?',
    e.engine ?? '?',
    e.created ? e.created.toISOString().replace('T', ' ').slice(0, 19) : '?',
    e.sizeBytes === null ? '?' : formatBytes(e.sizeBytes),
    e.state === 'valid' || e.state === 'unverified' ? e.state : `${e.state}: ${e.detail}`,
    ...(drilled ? [provenCell(e.drills)] : []),
  ]);
  out.line(`Backups in ${location}:`);
  const headers = ['NAME', 'DATABASE', 'ENGINE', 'CREATED (UTC)', 'SIZE', 'STATE'];
  for (const line of table(drilled ? [...headers, 'LAST PROVEN RESTORABLE (UTC)'] : headers, rows))
    out.line(line);
  if (entries.some((e) => e.state === 'unverified'))
    out.line(
      'unverified: present with the size its metadata records; the data was not read, so a changed byte would not show. "list backups --verify" (or verify-backup) reads every byte and says valid or corrupt.',
    );
  if (entries.some((e) => e.producer === 'reference'))
    out.line(
      `${REFERENCE_MARK.trim()} made by the reference tool: restore and verify-backup read it; retention rules (cleanup) do not apply to it.`,
    );
}

export function listCommand(): Command {
  const list = new Command('list')
    .description('List the databases on the server with their sizes (or "list backups")')
    .option('--json', 'print as JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const g = globals(cmd);
      const engine = await openEngine(connectionOptions(g, explicitEngine(g) ?? 'postgres'));
      try {
        const [server, databases] = await Promise.all([engine.serverInfo(), engine.listDatabases()]);
        if (opts.json) {
          out.json({ endpoint: engine.endpoint, server, databases });
          return;
        }
        out.line(`Databases on ${engine.endpoint} (${server.versionString.split(' on ')[0]}):`);
        const rows = databases.map((d) => [d.name, d.sizeBytes === null ? '?' : formatBytes(d.sizeBytes)]);
        for (const line of table(['DATABASE', 'SIZE'], rows)) out.line(line);
      } finally {
        await engine.close();
      }
    });
  list
    .command('backups')
    .description(
      'List the backups in the backup directory (or --cloud URI): name, database, engine, created, size, state (unverified: size only; --verify: SHA-256)',
    )
    .option('--cloud <uri>', 'list a cloud location instead of the backup directory')
    .option(
      '--verify',
      'read every backup and check its SHA-256 (valid / corrupt); without it only sizes are checked (unverified)',
    )
    .option('--json', 'print as JSON')
    .action(async (_opts: { json?: boolean }, cmd: Command) => {
      // `--json` may land on the parent `list` command, which has the same option.
      const g = cmd.optsWithGlobals<
        ReturnType<typeof globals> & { json?: boolean; cloud?: string; verify?: boolean }
      >();
      const where = cloudUri(g, g.cloud);
      const storage = where ? await openStore(where, cloudSettings(g)) : await openStore(backupDir(g));
      await requireDirectory(storage);
      const verify = Boolean(g.verify);
      const entries = await withDrills(storage, await listBackups(storage, { verify }));
      printBackupList(storage.location, entries, Boolean(g.json), verify);
    });
  return list;
}
