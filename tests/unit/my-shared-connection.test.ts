import { EventEmitter } from 'node:events';
import type mysql from 'mysql2/promise';
import { describe, expect, it } from 'vitest';
import { SharedConnection } from '../../src/engines/my-idle.js';

/** A stand-in for a mysql2 promise connection: statements answered in order, `fail` rejected. */
class FakeConnection extends EventEmitter {
  readonly statements: string[] = [];
  ended = false;
  constructor(readonly id: number) {
    super();
  }
  async query(sql: string): Promise<[unknown[], unknown]> {
    this.statements.push(sql);
    await new Promise((r) => setTimeout(r, 1));
    if (sql === 'fail') throw new Error(`statement failed on ${this.id}`);
    return [[{ sql, id: this.id }], []];
  }
  async end(): Promise<void> {
    this.ended = true;
    this.emit('end');
  }
}

function shared(idleMs = 50): { s: SharedConnection; opened: FakeConnection[] } {
  const opened: FakeConnection[] = [];
  const s = new SharedConnection(async () => {
    const c = new FakeConnection(opened.length + 1);
    opened.push(c);
    return c as unknown as mysql.Connection;
  }, idleMs);
  return { s, opened };
}

describe('SharedConnection (MySQL/MariaDB statements on one connection)', () => {
  it('statements made at the same time and one after another share one connection', async () => {
    const { s, opened } = shared();
    await Promise.all([s.query('a', []), s.query('b', []), s.query('c', [])]);
    await s.query('d', []);
    expect(opened).toHaveLength(1);
    expect(opened[0]?.statements).toEqual(['a', 'b', 'c', 'd']);
    await s.close();
    expect(opened[0]?.ended).toBe(true);
  });

  it('a statement that fails gives the connection up: the next one opens another', async () => {
    const { s, opened } = shared();
    await expect(s.query('fail', [])).rejects.toThrow('statement failed on 1');
    await new Promise((r) => setTimeout(r, 5));
    expect(opened[0]?.ended).toBe(true);
    await s.query('after', []);
    expect(opened).toHaveLength(2);
    expect(opened[1]?.statements).toEqual(['after']);
    await s.close();
  });

  it('an idle connection is ended after idleMs; a connection that ends is not used again', async () => {
    const { s, opened } = shared(20);
    await s.query('a', []);
    await new Promise((r) => setTimeout(r, 60));
    expect(opened[0]?.ended).toBe(true);
    await s.query('b', []);
    opened[1]?.emit('error', new Error('server closed the connection'));
    await s.query('c', []);
    expect(opened.map((c) => c.statements)).toEqual([['a'], ['b'], ['c']]);
    await s.close();
  });

  it('a connection that cannot be opened fails the statement, and the next one tries again', async () => {
    let attempts = 0;
    const s = new SharedConnection(async () => {
      attempts++;
      if (attempts === 1) throw new Error('refused');
      return new FakeConnection(attempts) as unknown as mysql.Connection;
    });
    await expect(s.query('a', [])).rejects.toThrow('refused');
    await expect(s.query('b', [])).resolves.toEqual([{ sql: 'b', id: 2 }]);
    await s.close();
  });
});
