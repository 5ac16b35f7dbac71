/**
 * What pg_restore is doing, from its --verbose lines: creating the schema, loading data, or building
 * indexes and constraints. The last phase reads nothing more from the backup (every byte may already
 * be in), so without it a progress bar sits at 100 % for as long as the indexes take.
 *
 *   pg_restore: creating TABLE "public.t"              (one job: items in order)
 *   pg_restore: processing data for table "public.t"
 *   pg_restore: creating INDEX "public.t_v_idx"
 *   pg_restore: launching item 3346 TABLE DATA t       (--jobs: several items at once)
 *   pg_restore: finished item 3346 TABLE DATA t
 */
export type RestorePhase = 'schema' | 'data' | 'post-data';

const PHASE_TEXT: Record<RestorePhase, string> = {
  schema: 'creating the schema (pre-data)',
  data: 'loading data',
  'post-data': 'building indexes and constraints (post-data)',
};

/** Item types of pg_restore's table of contents that load data, or come after it (post-data). */
const DATA = /^(TABLE DATA|SEQUENCE SET|BLOBS?|BLOB DATA|LARGE OBJECTS?|MATERIALIZED VIEW DATA)\b/;
const POST =
  /^(INDEX ATTACH|INDEX|FK CONSTRAINT|CONSTRAINT|CHECK CONSTRAINT|TRIGGER|EVENT TRIGGER|RULE|POLICY|STATISTICS)\b/;

export function phaseOf(itemType: string): RestorePhase {
  if (DATA.test(itemType)) return 'data';
  if (POST.test(itemType)) return 'post-data';
  return 'schema';
}

export class PgRestorePhases {
  private last: RestorePhase | undefined;
  /** --jobs: items launched and not finished yet, by id. */
  private readonly running = new Map<string, RestorePhase>();

  /** Feed one stderr line of pg_restore --verbose (other lines are ignored). */
  line(text: string): void {
    const m =
      /^pg_restore: (creating|processing data for|launching item (\d+)|finished item (\d+)) ?(.*)$/.exec(
        text,
      );
    if (!m) return;
    const [, verb = '', launched, finished, rest = ''] = m;
    if (finished) this.running.delete(finished);
    else if (launched) this.running.set(launched, phaseOf(rest));
    else if (verb === 'processing data for') this.last = 'data';
    else this.last = phaseOf(rest);
  }

  /** What is happening now, in words; undefined before the first telling line. */
  current(): string | undefined {
    if (this.running.size) {
      const phases = new Set(this.running.values());
      if (phases.has('data') && phases.has('post-data'))
        return `${PHASE_TEXT.data} and ${PHASE_TEXT['post-data']}`;
      for (const p of ['post-data', 'data', 'schema'] as const) if (phases.has(p)) return PHASE_TEXT[p];
    }
    return this.last ? PHASE_TEXT[this.last] : undefined;
  }
}
