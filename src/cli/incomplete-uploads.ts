import { incompleteUploads, planUploadPrune } from '../catalog/uploads.js';
import { DbBackupError, errorMessage } from '../errors.js';
import { formatBytes, formatDuration } from '../units.js';
import type { IncompleteUpload, Storage } from '../storage/storage.js';

/** `shop_….dump.zst  started 3 h 12 min ago, 40.0 MiB`, for lists and prune reports. */
export function describeUpload(u: IncompleteUpload, now = new Date()): string {
  const age = u.started
    ? `started ${formatDuration((now.getTime() - u.started.getTime()) / 1000)} ago`
    : 'start unknown';
  const size = u.size === undefined ? 'size unknown' : formatBytes(u.size);
  return `${u.key}  ${age}, ${size}${u.ours ? '' : ' (not recorded by dbbackup)'}`;
}

/** `cloud list --all`: the uploads no object listing shows, after the objects. */
export async function printIncompleteUploads(
  storage: Storage,
  say: (line: string) => void,
): Promise<IncompleteUpload[]> {
  const uploads = await incompleteUploads(storage);
  for (const u of uploads) say(`incomplete upload  ${describeUpload(u)}`);
  return uploads;
}

/**
 * The incomplete-uploads part of `cleanup --prune-incomplete`: abort dbbackup's unfinished
 * uploads older than the grace period (S3 multipart uploads, Azure uncommitted blocks), say what
 * happened to each, and fail (after trying them all) if any abort failed.
 */
export async function pruneIncompleteUploads(
  storage: Storage,
  o: { graceHours: number; dryRun: boolean },
  say: (line: string) => void,
): Promise<void> {
  const decisions = planUploadPrune(await incompleteUploads(storage), o.graceHours, new Date());
  const failed: string[] = [];
  for (const d of decisions) {
    if (d.action === 'keep') {
      say(`  kept     incomplete upload ${describeUpload(d.upload)}: ${d.reason}`);
      continue;
    }
    if (o.dryRun) {
      say(`  ABORT    incomplete upload ${describeUpload(d.upload)} (dry run: not aborted)`);
      continue;
    }
    try {
      await storage.abortIncompleteUpload?.(d.upload);
      say(`  aborted  incomplete upload ${describeUpload(d.upload)}`);
    } catch (err) {
      failed.push(d.upload.key);
      say(`  FAILED   incomplete upload ${describeUpload(d.upload)}: ${errorMessage(err)}`);
    }
  }
  if (failed.length)
    throw new DbBackupError(
      `${failed.length} incomplete upload${failed.length > 1 ? 's' : ''} could not be aborted`,
      {
        hint: 'The messages above say why; the parts are still stored (and billed) until aborted.',
      },
    );
}
