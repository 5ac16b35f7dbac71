// Fixtures, built idempotently: each database carries a `bench_fixture` table holding the parameters
// it was built with; a database whose parameters match is kept, anything else is rebuilt.
import { sh } from './util.mjs';
import { log } from './util.mjs';
import { mysql, myRecreate, pgDbExists, pgEnv, pgRecreate, psql } from './db.mjs';
import { PAGILA_GENERATOR, pagilaSql } from './pagila.mjs';

const GENERATOR = 'v1'; // bump when the SQL below changes, so old fixtures are rebuilt

const WORDS = `the of and to a in is it you that he was for on are with as I his they be at one have this
from or had by hot word but what some we can out other were all there when up use your how said an each she
which do their time if will way about many then them write would like so these her long make thing see him two
has look more day could go come did number sound no most people my over know water than call first who may down
side been now find any new work part take get place made live where after back little only round man year came
show every good me give our under name very through just form sentence great think say help low line differ turn
cause much mean before move right boy old too same tell does set three want air well also play small end put home
read hand port large spell add even land here must big high such follow act why ask men change went light kind
off need house picture try us again animal point mother world near build self earth father head stand own page
should country found answer school grow study still learn plant cover food sun four between state keep eye never
last let thought city tree cross farm hard start might story saw far sea draw left late run while press close
night real life few north database backup restore server replica index query table column schema transaction
commit rollback snapshot archive segment checksum latency throughput customer invoice order payment shipment
warehouse product category discount refund account balance ledger`.split(/\s+/);

// ---------------------------------------------------------------- PostgreSQL
function pgMarker(pg, db) {
  if (!pgDbExists(pg, db)) return null;
  const has = psql(pg, db, "select to_regclass('public.bench_fixture') is not null");
  return has === 't' ? psql(pg, db, 'select params from bench_fixture limit 1') : null;
}

function pgMark(pg, db, params) {
  psql(
    pg,
    db,
    `CREATE TABLE bench_fixture (built_at timestamptz DEFAULT now(), params text NOT NULL);
                INSERT INTO bench_fixture (params) VALUES ('${params}')`,
  );
}

function ensurePg(pg, db, paramsObj, build, force) {
  const params = JSON.stringify({ generator: GENERATOR, ...paramsObj });
  if (!force && pgMarker(pg, db) === params) return false;
  log(`fixture ${db}: building ${params}`);
  const t0 = Date.now();
  pgRecreate(pg, db);
  build();
  psql(pg, db, 'VACUUM ANALYZE');
  pgMark(pg, db, params);
  log(`fixture ${db}: built in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return true;
}

/** ~1 MB of docs per 750 rows (title, ~500 B Zipf-skewed text, ~320 B jsonb, ~400 B bytea: 40% random). */
function docsSql(rows) {
  const vocab = WORDS.map((w) => w.replace(/'/g, "''")).join(' ');
  return `
SELECT setseed(0.1234);
CREATE TEMP TABLE vocab AS SELECT string_to_array('${vocab}', ' ') AS w;
CREATE TABLE docs (
  id         bigint PRIMARY KEY,
  created_at timestamptz NOT NULL,
  title      text NOT NULL,
  body       text NOT NULL,
  attrs      jsonb NOT NULL,
  payload    bytea NOT NULL
);
INSERT INTO docs
SELECT g.i,
  timestamptz '2021-01-01' + random() * interval '1400 days',
  initcap((SELECT string_agg(v.w[1 + floor(random() * cardinality(v.w))::int + 0 * s], ' ')
             FROM generate_series(1, 3 + g.i % 6) s)),
  (SELECT string_agg(v.w[1 + floor(power(random(), 2.2) * cardinality(v.w))::int + 0 * s]
            || CASE WHEN random() < 0.07 THEN '.' WHEN random() < 0.03 THEN ' ' || (random() * 99999)::int ELSE '' END, ' ')
     FROM generate_series(1, 30 + g.i % 140) s),
  jsonb_build_object(
    'user', 'user' || (random() * 50000)::int,
    'email', 'u' || (random() * 50000)::int || '@mail' || (g.i % 17) || '.example',
    'score', round((random() * 1000)::numeric, 3),
    'active', random() < 0.7,
    'tags', (SELECT jsonb_agg(v.w[1 + floor(random() * cardinality(v.w))::int + 0 * s]) FROM generate_series(1, 1 + g.i % 6) s),
    'ip', '10.' || (random() * 255)::int || '.' || (random() * 255)::int || '.' || (random() * 255)::int,
    'agent', (ARRAY['Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0',
                    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36',
                    'Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148',
                    'curl/8.5.0'])[1 + g.i % 4],
    'geo', jsonb_build_object('lat', round((random() * 180 - 90)::numeric, 5), 'lon', round((random() * 360 - 180)::numeric, 5)),
    'session', md5(random()::text)),
  CASE WHEN g.i % 5 < 2
    THEN (SELECT decode(string_agg(md5(random()::text || s), ''), 'hex') FROM generate_series(1, 16 + g.i % 32) s)
    ELSE convert_to(format('{"v":1,"seq":%s,"kind":"%s","pad":"%s"}', g.i, v.w[1 + g.i % 50],
                           repeat(chr(65 + g.i % 26), 100 + g.i % 400)), 'UTF8') || int8send(g.i * 7919)
  END
FROM generate_series(1, ${rows}) AS g(i), vocab v;
CREATE INDEX docs_created_at ON docs (created_at);
`;
}

function pgbenchInit(pg, db, scale) {
  sh('pgbench', ['-i', '-s', String(scale), '-q', db], { env: pgEnv(pg) });
}

export function buildPgFixtures(pg, cfg, need) {
  const f = cfg.fixtures;
  const force = cfg.rebuild;
  const built = [];
  if (need.has('pg')) {
    const rows = Math.max(100, Math.round(f.docsMB * 750));
    if (
      ensurePg(
        pg,
        cfg.db.pg,
        { pgbench: f.pgScale, docsRows: rows },
        () => {
          pgbenchInit(pg, cfg.db.pg, f.pgScale);
          psql(pg, cfg.db.pg, null, { input: docsSql(rows) });
        },
        force,
      )
    )
      built.push(cfg.db.pg);
  }
  if (need.has('pgTiny')) {
    if (
      ensurePg(
        pg,
        cfg.db.pgTiny,
        { tiny: 100 },
        () =>
          psql(
            pg,
            cfg.db.pgTiny,
            `CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, created timestamptz NOT NULL);
          INSERT INTO items SELECT i, 'item ' || i, timestamptz '2024-01-01' + i * interval '1 hour' FROM generate_series(1, 100) i`,
          ),
        force,
      )
    )
      built.push(cfg.db.pgTiny);
  }
  if (need.has('pgMany')) {
    if (
      ensurePg(
        pg,
        cfg.db.pgMany,
        { tables: f.manyTables },
        () =>
          psql(
            pg,
            cfg.db.pgMany,
            `DO $$
BEGIN
  FOR t IN 1..${f.manyTables} LOOP
    EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, name text NOT NULL, val numeric(12,2), created timestamptz NOT NULL)', lpad(t::text, 5, '0'));
    EXECUTE format('INSERT INTO t%s SELECT i, ''row '' || i, i * 1.5, timestamptz ''2024-01-01'' + i * interval ''1 day'' FROM generate_series(1, 10) i', lpad(t::text, 5, '0'));
    IF t % 100 = 0 THEN COMMIT; END IF;
  END LOOP;
END $$`,
          ),
        force,
      )
    )
      built.push(cfg.db.pgMany);
  }
  if (need.has('pgPagila')) {
    // its own generator version (lib/pagila.mjs), so that changing it rebuilds this fixture only
    if (
      ensurePg(
        pg,
        cfg.db.pgPagila,
        { generator: PAGILA_GENERATOR, rentals: f.pagilaRentals },
        () => psql(pg, cfg.db.pgPagila, null, { input: pagilaSql(f.pagilaRentals, WORDS) }),
        force,
      )
    )
      built.push(cfg.db.pgPagila);
  }
  if (need.has('pgScaling')) {
    for (const s of f.scaling) {
      const db = cfg.db.pgScale(s);
      if (ensurePg(pg, db, { pgbench: s }, () => pgbenchInit(pg, db, s), force)) built.push(db);
    }
  }
  if (built.length) psql(pg, 'postgres', 'CHECKPOINT');
  return built;
}

// ---------------------------------------------------------------- MariaDB
/**
 * bench_my: customers, orders (+ secondary index), notes (TEXT from a sentence pool), attachments (BLOB,
 * half random) — deterministic (CRC32/SHA2 of the row number) and generated inside the server with the
 * SEQUENCE engine (seq_1_to_N tables). Full size (myMB = 500): 1 M / 3 M / 250 k / 90 k rows.
 */
function mySql(myMB) {
  const k = myMB / 500;
  const n = (x) => Math.max(10, Math.round(x * k));
  const C = n(1_000_000);
  const O = n(3_000_000);
  const N = n(250_000);
  const A = n(90_000);
  const S = Math.min(20_000, Math.max(500, Math.round(N / 5)));
  const words = WORDS.map((w, i) => `(${i},'${w.replace(/'/g, "''")}')`).join(',');
  const sent = (tag) => `(SELECT s FROM _sent WHERE id = CRC32(CONCAT('${tag}', n.seq)) % ${S})`;
  return `
SET SESSION sql_log_bin = 0;
CREATE TABLE _words (id INT PRIMARY KEY, w VARCHAR(32) NOT NULL);
INSERT INTO _words VALUES ${words};
SET @nw = (SELECT COUNT(*) FROM _words);
CREATE TABLE _sent (id INT PRIMARY KEY, s VARCHAR(400) NOT NULL);
SET SESSION group_concat_max_len = 100000;
INSERT INTO _sent
SELECT a.seq, CONCAT(GROUP_CONCAT(w.w ORDER BY b.seq SEPARATOR ' '), '.')
FROM seq_0_to_${S - 1} a
JOIN seq_1_to_17 b ON b.seq <= 6 + a.seq % 12
JOIN _words w ON w.id = FLOOR(POW((CRC32(CONCAT(a.seq, '/', b.seq)) % 100000) / 100000, 2.2) * @nw)
GROUP BY a.seq;

CREATE TABLE customers (
  id INT UNSIGNED PRIMARY KEY, name VARCHAR(64) NOT NULL, email VARCHAR(128) NOT NULL, country CHAR(2) NOT NULL,
  balance DECIMAL(12,2) NOT NULL, status TINYINT NOT NULL, created DATETIME NOT NULL
) ENGINE=InnoDB;
INSERT INTO customers
SELECT seq,
  CONCAT(ELT(1 + CRC32(CONCAT('f', seq)) % 12, 'Anna','Ben','Chloe','David','Emma','Felix','Grace','Hugo','Ines','Jonas','Karin','Liam'), ' ',
         ELT(1 + CRC32(CONCAT('l', seq)) % 12, 'Smith','Muller','Garcia','Rossi','Dubois','Nowak','Silva','Jensen','Novak','Horvat','Larsen','Weber')),
  CONCAT('user', seq, '@', ELT(1 + seq % 5, 'example.com','mail.test','corp.example','shop.test','inbox.test')),
  ELT(1 + CRC32(CONCAT('c', seq)) % 10, 'DE','FR','US','GB','ES','IT','PL','NL','SE','PT'),
  (CRC32(CONCAT('b', seq)) % 10000000) / 100,
  CRC32(CONCAT('s', seq)) % 4,
  TIMESTAMP'2018-01-01 00:00:00' + INTERVAL (CRC32(CONCAT('t', seq)) % 200000000) SECOND
FROM seq_1_to_${C};

CREATE TABLE orders (
  id BIGINT UNSIGNED PRIMARY KEY, customer_id INT UNSIGNED NOT NULL, amount DECIMAL(10,2) NOT NULL,
  qty SMALLINT NOT NULL, status VARCHAR(16) NOT NULL, created DATETIME NOT NULL, KEY idx_customer (customer_id)
) ENGINE=InnoDB;
INSERT INTO orders
SELECT seq, 1 + CRC32(CONCAT('oc', seq)) % ${C}, (CRC32(CONCAT('oa', seq)) % 100000) / 100, 1 + seq % 9,
  ELT(1 + CRC32(CONCAT('os', seq)) % 5, 'new','paid','shipped','delivered','refunded'),
  TIMESTAMP'2019-01-01 00:00:00' + INTERVAL (seq * 40 + CRC32(CONCAT('ot', seq)) % 40) SECOND
FROM seq_1_to_${O};

CREATE TABLE notes (
  id INT UNSIGNED PRIMARY KEY, customer_id INT UNSIGNED NOT NULL, subject VARCHAR(400) NOT NULL,
  body TEXT NOT NULL, created DATETIME NOT NULL
) ENGINE=InnoDB;
INSERT INTO notes
SELECT n.seq, 1 + CRC32(CONCAT('nc', n.seq)) % ${C}, ${sent('ns')},
  CONCAT_WS(' ', ${['n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7'].map(sent).join(', ')},
            IF(n.seq % 3 = 0, CONCAT('Ref #', CRC32(CONCAT('nr', n.seq))), NULL)),
  TIMESTAMP'2020-01-01 00:00:00' + INTERVAL (n.seq * 120) SECOND
FROM seq_1_to_${N} n;

CREATE TABLE attachments (
  id INT UNSIGNED PRIMARY KEY, note_id INT UNSIGNED NOT NULL, name VARCHAR(255) NOT NULL,
  mime VARCHAR(64) NOT NULL, data BLOB NOT NULL
) ENGINE=InnoDB;
INSERT INTO attachments
SELECT seq, 1 + seq % ${N}, CONCAT('file_', seq, ELT(1 + seq % 3, '.bin', '.pdf', '.png')),
  ELT(1 + seq % 3, 'application/octet-stream', 'application/pdf', 'image/png'),
  IF(seq % 2 = 0,
     CONCAT(${'abcdefghijkl'
       .split('')
       .map((c) => `UNHEX(SHA2(CONCAT(seq, '${c}'), 512))`)
       .join(', ')}),
     CONCAT('%PDF-1.4\\n', REPEAT(CONCAT(seq % 97, ' 0 obj << /Type /Page /Parent 3 0 R /Contents [', seq % 13, ' 0 R] >> endobj\\n'), 14)))
FROM seq_1_to_${A};

DROP TABLE _sent;
DROP TABLE _words;
ANALYZE TABLE customers, orders, notes, attachments;
`;
}

/** Build db unless its bench_fixture row holds these parameters; returns whether it was built. */
function ensureMy(my, db, paramsObj, sql, force) {
  const params = JSON.stringify({ generator: GENERATOR, ...paramsObj });
  let current = null;
  try {
    current = mysql(my, `SELECT params FROM \`${db}\`.bench_fixture LIMIT 1`);
  } catch {
    /* missing */
  }
  if (!force && current === params) return false;
  const input = sql(); // may refuse (a missing engine) before anything is dropped
  log(`fixture ${db}: building ${params}`);
  const t0 = Date.now();
  myRecreate(my, db);
  mysql(my, null, { db, input });
  mysql(
    my,
    `CREATE TABLE bench_fixture (built_at DATETIME DEFAULT CURRENT_TIMESTAMP, params TEXT NOT NULL);
             INSERT INTO bench_fixture (params) VALUES ('${params}')`,
    { db },
  );
  log(`fixture ${db}: built in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return true;
}

/** The MariaDB fixtures the selected groups need (`my`, `myTiny`); returns the databases built. */
export function buildMyFixtures(my, cfg, need) {
  const built = [];
  const force = cfg.rebuild;
  if (need.has('my')) {
    const db = cfg.db.my;
    const needSequence = () => {
      if (
        mysql(
          my,
          "SELECT COUNT(*) FROM information_schema.engines WHERE engine = 'SEQUENCE' AND support IN ('YES','DEFAULT')",
        ) !== '1'
      )
        throw new Error(
          'the MariaDB fixture needs the SEQUENCE engine (MariaDB ≥ 10.0); this server has none',
        );
      return mySql(cfg.fixtures.myMB);
    };
    if (ensureMy(my, db, { myMB: cfg.fixtures.myMB }, needSequence, force)) built.push(db);
  }
  if (need.has('myTiny')) {
    // the same shape as bench_pg_tiny: one table, 100 rows (10 × 10 digits: no SEQUENCE engine needed)
    const digits = [...Array(10).keys()].map((d) => `SELECT ${d} AS d`).join(' UNION ALL ');
    const sql = () => `
CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL, created DATETIME NOT NULL) ENGINE=InnoDB;
INSERT INTO items
SELECT n.i, CONCAT('item ', n.i), TIMESTAMP'2024-01-01 00:00:00' + INTERVAL n.i HOUR
FROM (SELECT a.d * 10 + b.d + 1 AS i FROM (${digits}) a CROSS JOIN (${digits}) b) n;
`;
    if (ensureMy(my, cfg.db.myTiny, { tiny: 100 }, sql, force)) built.push(cfg.db.myTiny);
  }
  return built;
}
