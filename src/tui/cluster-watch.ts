import type { ClusterMemberState, ClusterProgressSink } from '../pipeline/progress.js';

export interface MemberView {
  name: string;
  state: ClusterMemberState;
  estimate: number | null;
  bytes: number;
  reason?: string;
}

/**
 * What a cluster backup reports as it goes (the same sink the CLI's ClusterProgress implements),
 * kept for the screen to draw: each database's state and bytes, and the notes between them.
 */
export class ClusterWatch implements ClusterProgressSink {
  private readonly members = new Map<string, MemberView & { read?: () => number | null }>();
  readonly notes: string[] = [];
  readonly started = Date.now();

  begin(databases: ReadonlyArray<{ name: string; estimate: number | null }>): void {
    for (const d of databases)
      this.members.set(d.name, { name: d.name, state: 'waiting', estimate: d.estimate, bytes: 0 });
  }

  estimate(name: string, bytes: number | null): void {
    const m = this.members.get(name);
    if (m && bytes !== null && m.state !== 'done') m.estimate = bytes;
  }

  start(name: string, read: () => number | null): void {
    const m = this.member(name);
    m.state = 'active';
    m.read = read;
  }

  done(name: string, result: { bytes?: number; stored?: number } = {}): void {
    const m = this.member(name);
    this.sample(m);
    if (result.bytes !== undefined) m.bytes = result.bytes;
    m.state = 'done';
    m.read = undefined;
  }

  failed(name: string, reason: string): void {
    const m = this.member(name);
    m.state = 'failed';
    m.reason = reason;
    m.read = undefined;
  }

  skipped(name: string, reason: string): void {
    const m = this.member(name);
    m.state = 'skipped';
    m.reason = reason;
  }

  note(text: string): void {
    this.notes.push(text);
  }

  end(): void {
    for (const m of this.members.values()) this.sample(m);
  }

  /** Every database now, active ones with a fresh byte count. */
  view(): MemberView[] {
    return [...this.members.values()].map((m) => {
      this.sample(m);
      return { name: m.name, state: m.state, estimate: m.estimate, bytes: m.bytes, reason: m.reason };
    });
  }

  private sample(m: MemberView & { read?: () => number | null }): void {
    const n = m.read?.();
    if (n !== null && n !== undefined) m.bytes = Math.max(m.bytes, n);
  }

  private member(name: string): MemberView & { read?: () => number | null } {
    let m = this.members.get(name);
    if (!m) {
      m = { name, state: 'waiting', estimate: null, bytes: 0 };
      this.members.set(name, m);
    }
    return m;
  }
}
