import { hasRule } from '../catalog/retention.js';
import { configLocation, loadConfig } from '../config/file.js';
import { resolveSettings } from '../config/resolve.js';
import { DbBackupError, SafetyError, UsageError } from '../errors.js';
import { cleanupTarget, destinationKey } from '../locks/targets.js';
import { takeRunLocks } from '../locks/run-lock.js';
import { reportResult } from '../ops/operation.js';
import { loadReferenceConfig } from '../reference/config.js';
import { runCleanup, type CleanupOptions, type CleanupResult } from '../retention/cleanup.js';
import { retentionPolicy, timeZoneOf, type RetentionOptions } from '../retention/policy-options.js';
import type { Storage } from '../storage/storage.js';
import type { TuiConfig } from './config.js';
import { underLocks } from './live-restore.js';
import type { PrunePreview, RetentionForm } from './services.js';

/*
 * "Prune by policy" of the archive manager: `cleanup` on the archive the screens list, through the
 * same runCleanup, the same option parsers, the same run lock and the same audit record.
 */

export const EMPTY_RETENTION: RetentionForm = {
  keepLast: '',
  keepHourly: '',
  keepDaily: '',
  keepWeekly: '',
  keepMonthly: '',
  keepYearly: '',
  keepWithin: '',
  retentionDays: '',
  minBackups: '',
  timeZone: '',
};

/** The retention.* settings as the CLI resolves them for `cleanup` (environment, profile, file). */
export async function retentionForm(config: TuiConfig): Promise<RetentionForm> {
  const loaded = await loadConfig({ ...configLocation(config.configFile), via: 'default' });
  const resolved = resolveSettings({
    flags: new Map(),
    env: process.env,
    config: loaded?.config,
    profile: config.profile,
    reference: await loadReferenceConfig(process.cwd()),
  });
  const form = { ...EMPTY_RETENTION };
  for (const r of resolved.values()) {
    const option = r.setting.option as keyof RetentionForm;
    if (r.setting.key.startsWith('retention.') && option in form && r.value !== undefined)
      form[option] = String(r.value);
  }
  return form;
}

/** Blank fields are unset; the rest go through the CLI's strict parsers (`""` is never 0). */
function cleanupOptions(form: RetentionForm, now: Date, dryRun: boolean): CleanupOptions {
  const typed: RetentionOptions = Object.fromEntries(
    Object.entries(form)
      .map(([k, v]) => [k, v.trim()] as const)
      .filter(([, v]) => v !== ''),
  );
  const policy = retentionPolicy(typed);
  if (!hasRule(policy))
    throw new UsageError(
      'No retention rule given',
      'Fill in keep last, keep daily…, keep within, or retention days with min backups.',
    );
  return { policy, timeZone: timeZoneOf(typed), dryRun, pruneIncomplete: false, graceHours: 24, now };
}

export async function previewPrune(storage: Storage, form: RetentionForm): Promise<PrunePreview> {
  const now = new Date();
  return { form, now, plan: await runCleanup(storage, cleanupOptions(form, now, true)) };
}

const toDelete = (r: CleanupResult): string[] =>
  r.decisions
    .filter((d) => !d.keep)
    .map((d) => d.key)
    .sort();

/** A cleanup that stopped part way: what it did is in `result`; the audit records a failure. */
export class PruneFailed extends DbBackupError {
  constructor(readonly result: CleanupResult) {
    super(`cleanup did not finish: ${result.errors.length} problem(s)`, {
      details: result.errors,
      hint: result.hints.join(' ') || undefined,
    });
  }
}

/**
 * The confirmed prune: under the cleanup run lock of the archive, planned again (a backup may have
 * come or gone since the preview) and refused unless it deletes exactly what the user confirmed.
 */
export function runPrune(storage: Storage, where: string, preview: PrunePreview): Promise<CleanupResult> {
  return underLocks(
    () => takeRunLocks([cleanupTarget(destinationKey(where))]),
    async () => {
      const again = await runCleanup(storage, cleanupOptions(preview.form, preview.now, true));
      const confirmed = toDelete(preview.plan).join('\n');
      if (toDelete(again).join('\n') !== confirmed)
        throw new SafetyError('The plan changed since the preview: nothing was deleted', {
          hint: 'Backups came or went meanwhile. Look at the new preview and confirm again.',
        });
      const result = await runCleanup(storage, cleanupOptions(preview.form, preview.now, false));
      reportResult({
        destination: result.location,
        bytes: result.freedBytes,
        details: { deleted: result.deleted.length, errors: result.errors.length },
      });
      if (result.errors.length) throw new PruneFailed(result);
      return result;
    },
  );
}
