import type { RetentionDecision } from '../../catalog/retention.js';

/**
 * Retention keeps chains whole: a kept incremental or differential keeps every backup under it
 * (so expiring a full only ever takes the deltas that depend on nothing kept). The deletions run
 * newest first (applyPitrCleanup), so an interrupted cleanup never leaves a delta without its parent.
 */
export function keepChainsWhole<D extends RetentionDecision>(
  decisions: D[],
  parentOf: (name: string) => string | undefined,
): D[] {
  const byKey = new Map(decisions.map((d) => [d.key, d]));
  for (const d of decisions.filter((x) => x.keep)) {
    let child = d.key;
    for (let parent = parentOf(child), hops = 0; parent && hops < 1000; parent = parentOf(child), hops++) {
      const p = byKey.get(parent);
      if (!p) break;
      if (!p.keep) {
        p.keep = true;
        p.reasons = [`parent of ${child}`];
      } else if (!p.reasons.some((r) => r.startsWith('parent of'))) p.reasons.push(`parent of ${child}`);
      child = parent;
    }
  }
  return decisions;
}
