import type { ToolCommand } from '../engines/engine.js';
import type { CompressionPlan } from './compression.js';
import type { Trailer } from '../catalog/trailers.js';
import type { PgArchiveCheck } from '../catalog/pg-archive.js';
import { IntegrityError } from '../errors.js';
import { ToolProcess, type StderrClassifier } from './process.js';
import { startWriteGroup, type GroupEncryption, type RawView, type WriteGroup } from './filter-group.js';

export interface DumpGroupOptions<D = unknown> {
  dump: ToolCommand;
  classify: StderrClassifier;
  compression: CompressionPlan;
  onWarning?: (line: string) => void;
  /** Applied after compression; the checksum describes the stored bytes. */
  encryption?: GroupEncryption<D>;
  /**
   * The dump must end with this (SQL dumps): checked on the raw bytes, or — when an external
   * compressor takes them — on the stored bytes, decoded beside the dump (DecodedTail).
   */
  trailer?: Trailer;
  /**
   * A walk of the custom-format archive on the raw bytes (src/catalog/pg-archive.ts): only where the
   * raw bytes pass through this process anyway (an in-process compressor); an archive it finds
   * incomplete or damaged fails the dump before the last byte is released.
   */
  archive?: PgArchiveCheck;
}

/**
 * A dump tool's output through the write group (compress → encrypt → SHA-256 → commit gate). The
 * group hands the dump's stdout to an external compressor as a kernel pipe, so only compressed
 * bytes reach JavaScript; it measures the raw dump (size, head, tail) and holds back the last byte
 * until the dump, the compressor and the dump's completeness were judged.
 */
export function startDumpGroup<D = unknown>(o: DumpGroupOptions<D>): WriteGroup<D> {
  const dump = new ToolProcess(o.dump, ['ignore', 'pipe', 'pipe'], o.classify, o.onWarning);
  return startWriteGroup<D>({
    source: dump,
    taps: o.archive ? [o.archive] : undefined,
    compression: o.compression,
    encryption: o.encryption,
    measureRaw: { tail: Boolean(o.trailer) },
    check: (raw) => {
      checkDumpComplete(raw, o.trailer);
      checkArchive(o.archive);
    },
  });
}

/**
 * A dump tool that stops early can still exit 0 if something else kills its reader: an empty dump,
 * or one without the trailer it writes last, is not a backup.
 */
export function checkDumpComplete(raw: RawView, trailer: Trailer | undefined): void {
  if (raw.inProcess && raw.bytes === 0) throw new IntegrityError('The dump tool produced no output');
  const tail = raw.tail;
  if (!trailer || tail === undefined) return;
  if (tail.length === 0) throw new IntegrityError('The dump tool produced no output');
  if (!trailer.pattern.test(tail.toString('utf8'))) {
    throw new IntegrityError(
      `The dump ended without its completion trailer ("${trailer.text}"): it is incomplete`,
      { hint: 'The dump tool stopped early; check the server log and try again.' },
    );
  }
}

/** The archive walk's verdict (when one ran): an invalid archive is not a backup; `unknown` is judged later. */
export function checkArchive(archive: PgArchiveCheck | undefined): void {
  const verdict = archive?.verdict();
  if (verdict?.state !== 'invalid') return;
  throw new IntegrityError(`pg_dump's archive is incomplete or damaged: ${verdict.problem}`, {
    hint: 'The dump tool stopped early or wrote something unexpected; nothing was kept. Check the server log and try again.',
  });
}
