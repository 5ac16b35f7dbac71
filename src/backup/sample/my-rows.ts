// MySQL / MariaDB sample bookkeeping: the selected rows of each table held in memory by identity,
// the foreign keys between tables, and the orders in which the rows load with FOREIGN_KEY_CHECKS=1.

export type MyValue = string | Buffer | null;

export interface MyColumn {
  name: string;
  binary: boolean;
  numeric: boolean;
  generated: boolean;
  /** What the column's collation treats as equal maps to the same string. */
  fold: (s: string) => string;
}

export interface MyEdge {
  name: string;
  child: MyTable;
  parent: MyTable;
  childCols: string[];
  parentCols: string[];
  /** Values looked up in the parent already, folded. */
  resolved: Set<string>;
  pending: Map<string, MyValue[]>;
}

export interface MyTable {
  name: string;
  q: string;
  columns: Map<string, MyColumn>;
  insertable: MyColumn[];
  /** Primary key or a unique key of NOT NULL columns; null when the table has neither. */
  key: string[] | null;
  /** Columns read for each selected row: the key, outgoing FK columns, columns referenced by FKs (all columns when keyless). */
  need: string[];
  out: MyEdge[];
  in: MyEdge[];
  /** Selected rows: identity → the `need` values. */
  rows: Map<string, MyValue[]>;
  sampled: number;
  referenced: number;
  dropped: number;
}

export const MY_NUMERIC = new Set([
  'tinyint',
  'smallint',
  'mediumint',
  'int',
  'integer',
  'bigint',
  'decimal',
  'numeric',
  'float',
  'double',
  'real',
]);
export const MY_BINARY = new Set([
  'binary',
  'varbinary',
  'tinyblob',
  'blob',
  'mediumblob',
  'longblob',
  'bit',
  'geometry',
  'point',
  'linestring',
  'polygon',
  'multipoint',
  'multilinestring',
  'multipolygon',
  'geometrycollection',
]);
const MY_TEXT = new Set(['char', 'varchar', 'tinytext', 'text', 'mediumtext', 'longtext', 'enum', 'set']);

export function foldFor(dataType: string, collation: string | null): (s: string) => string {
  if (!MY_TEXT.has(dataType) || !collation) return (s) => s;
  const ci = /_ci(_|$)/.test(collation) || /_ai_/.test(collation);
  const padSpace =
    !/nopad|_0900_|_uca1400_.*_nopad/.test(collation) && dataType !== 'enum' && dataType !== 'set';
  return (s) => {
    let v = padSpace ? s.replace(/ +$/, '') : s;
    if (ci) v = v.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase();
    return v;
  };
}

export function myIdent(name: string): string {
  return `\`${name.replace(/`/g, '``')}\``;
}

export function valuesAt(t: MyTable, row: MyValue[], cols: string[]): MyValue[] {
  return cols.map((c) => row[t.need.indexOf(c)] ?? null);
}

/** Identity of values as the columns' collations compare them. */
export function foldedKey(t: MyTable, cols: string[], values: MyValue[]): string {
  return values
    .map((v, i) => {
      if (v === null) return '\u0001N';
      if (Buffer.isBuffer(v)) return `\u0001x${v.toString('hex')}`;
      const col = t.columns.get(cols[i] ?? '');
      return `\u0001s${col ? col.fold(v) : v}`;
    })
    .join('');
}

/** Identity of values byte for byte. */
export function exactKey(values: MyValue[]): string {
  return values
    .map((v) => (v === null ? '\u0001N' : Buffer.isBuffer(v) ? `\u0001x${v.toString('hex')}` : `\u0001s${v}`))
    .join('');
}

/** Raw column bytes as values: binary columns stay bytes, the rest is text. */
export function convert(t: MyTable, cols: string[], raw: Array<Buffer | null>): MyValue[] {
  return raw.map((b, i) => {
    if (b === null || b === undefined) return null;
    return t.columns.get(cols[i] ?? '')?.binary ? b : b.toString('utf8');
  });
}

/** A value as an SQL literal; `escape` quotes a string the way the connection's server reads it. */
export function literal(escape: (s: string) => string, col: MyColumn | undefined, v: MyValue): string {
  if (v === null) return 'NULL';
  if (Buffer.isBuffer(v)) return v.length ? `0x${v.toString('hex')}` : "''";
  if (col?.numeric && /^[-+]?[0-9.eE+-]+$/.test(v)) return v;
  return escape(v);
}

/** A WHERE condition matching any of the tuples on the columns. */
export function matchAny(
  escape: (s: string) => string,
  t: MyTable,
  cols: string[],
  tuples: MyValue[][],
): string {
  if (cols.length === 1) {
    const col = t.columns.get(cols[0] ?? '');
    return `${myIdent(cols[0] ?? '')} IN (${tuples.map((v) => literal(escape, col, v[0] ?? null)).join(', ')})`;
  }
  return tuples
    .map(
      (v) =>
        `(${cols.map((c, i) => `${myIdent(c)} = ${literal(escape, t.columns.get(c), v[i] ?? null)}`).join(' AND ')})`,
    )
    .join(' OR ');
}

/**
 * Adds a row to a table's selection; true when it was new. With `followReferences`, the row's
 * foreign key values not looked up yet become pending on their edge.
 */
export function selectRow(
  t: MyTable,
  row: MyValue[],
  followReferences: boolean,
  duplicates?: Map<string, number>,
): boolean {
  let id = t.key ? exactKey(valuesAt(t, row, t.key)) : exactKey(row);
  if (!t.key && duplicates) {
    // Identical rows of a keyless table are distinct rows of the sample.
    const n = duplicates.get(id) ?? 0;
    duplicates.set(id, n + 1);
    id = `${id}#${n}`;
  } else if (!t.key) id = `${id}#0`;
  if (t.rows.has(id)) return false;
  t.rows.set(id, row);
  if (followReferences) {
    for (const e of t.out) {
      const fk = valuesAt(t, row, e.childCols);
      if (fk.some((v) => v === null)) continue;
      const k = foldedKey(e.child, e.childCols, fk);
      if (!e.resolved.has(k)) e.pending.set(k, fk);
    }
  }
  return true;
}

/**
 * 3. Every foreign key value must have its row; leave out rows where it does not (without
 * --keep-references: rows whose referenced row was not sampled; with it: orphans in the source).
 */
export function dropOrphans(edges: MyEdge[]): void {
  for (let changed = true; changed;) {
    changed = false;
    for (const e of edges) {
      const present = new Set<string>();
      for (const row of e.parent.rows.values()) {
        present.add(foldedKey(e.parent, e.parentCols, valuesAt(e.parent, row, e.parentCols)));
      }
      for (const [id, row] of e.child.rows) {
        const fk = valuesAt(e.child, row, e.childCols);
        if (fk.some((v) => v === null)) continue;
        if (!present.has(foldedKey(e.parent, e.parentCols, fk))) {
          e.child.rows.delete(id);
          e.child.dropped++;
          changed = true;
        }
      }
    }
  }
}

/** Rows of a self-referencing table ordered so that referenced rows come first; rows in a cycle apart. */
export function rowOrder(t: MyTable): { ids: string[]; looped: string[] } {
  const self = t.out.filter((e) => e.parent === t);
  const ids = [...t.rows.keys()];
  if (!self.length) return { ids, looped: [] };
  const byRef = self.map((e) => {
    const m = new Map<string, string>();
    for (const [id, row] of t.rows) m.set(foldedKey(t, e.parentCols, valuesAt(t, row, e.parentCols)), id);
    return m;
  });
  const children = new Map<string, string[]>();
  const waiting = new Map<string, number>();
  for (const [id, row] of t.rows) {
    self.forEach((e, i) => {
      const fk = valuesAt(t, row, e.childCols);
      if (fk.some((v) => v === null)) return;
      const parent = byRef[i]?.get(foldedKey(t, e.parentCols, fk));
      if (parent === undefined || parent === id) return;
      const list = children.get(parent);
      if (list) list.push(id);
      else children.set(parent, [id]);
      waiting.set(id, (waiting.get(id) ?? 0) + 1);
    });
  }
  const out: string[] = ids.filter((id) => !waiting.get(id));
  for (let i = 0; i < out.length; i++) {
    for (const child of children.get(out[i] ?? '') ?? []) {
      const left = (waiting.get(child) ?? 0) - 1;
      waiting.set(child, left);
      if (left === 0) out.push(child);
    }
  }
  const done = new Set(out);
  return { ids: out, looped: ids.filter((id) => !done.has(id)) };
}

/** Tables ordered so that referenced tables come first; members of multi-table cycles are marked. */
export function tableOrder(tables: MyTable[]): { order: MyTable[]; cyclic: Set<MyTable> } {
  const waiting = new Map<MyTable, number>();
  for (const t of tables) {
    waiting.set(t, new Set(t.out.filter((e) => e.parent !== t).map((e) => e.parent)).size);
  }
  const order = tables.filter((t) => !waiting.get(t));
  for (let i = 0; i < order.length; i++) {
    const done = order[i];
    if (!done) continue;
    const dependents = new Set(done.in.filter((e) => e.child !== done).map((e) => e.child));
    for (const d of dependents) {
      const left = (waiting.get(d) ?? 0) - 1;
      waiting.set(d, left);
      if (left === 0) order.push(d);
    }
  }
  const placed = new Set(order);
  const cyclic = new Set(tables.filter((t) => !placed.has(t)));
  return { order: [...order, ...cyclic], cyclic };
}
