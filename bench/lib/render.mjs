// Re-render the Markdown report of a saved run (bench/results/*.json) with the current report code:
// `node bench/run.mjs --render bench/results/2026-11-26-full.json`. Nothing is measured again.
import fs from 'node:fs';
import path from 'node:path';
import { GROUPS } from './cases.mjs';
import { parseConfig } from './config.mjs';
import { myDbSize, pgDbSize, probeMy, probePg } from './db.mjs';
import { evaluateTargets, renderMarkdown } from './report.mjs';
import { groupCases } from './runner.mjs';
import { log } from './util.mjs';

export function renderSaved(jsonPath, argv) {
  const saved = JSON.parse(fs.readFileSync(jsonPath, 'utf8'));
  const cfg = parseConfig([...argv, '--scale', saved.scale]);
  cfg.smoke = Boolean(saved.smoke);
  cfg.only = saved.only ?? null;
  cfg.runs = saved.runs;
  cfg.warmup = saved.warmup;
  cfg.fixtures = saved.fixtures;
  const c = { cfg, db: cfg.db, fixtures: saved.fixtures, work: cfg.work, distHash: saved.distHash ?? null };
  if (saved.runsSmall) cfg.runsSmall = saved.runsSmall;
  else {
    // older files: the counted runs of the tiny / many-table group
    const small = saved.groups.find((g) => g.id === 'pg-small');
    const n = small?.cases[0]?.runs.filter((m) => !m.warm).length;
    if (n) cfg.runsSmall = n;
  }

  // database sizes: saved ones, else asked from the servers (the fixtures are kept between runs)
  const sizes = new Map(Object.entries(saved.dbSizes ?? {}));
  let pg;
  let my;
  c.dbSize = (db) => {
    if (sizes.has(db)) return sizes.get(db);
    let v = null;
    try {
      if (db.startsWith('bench_my')) {
        my ??= probeMy(cfg.my);
        if (!my.error) v = myDbSize(my, db);
      } else {
        pg ??= probePg(cfg.pg);
        if (!pg.error) v = pgDbSize(pg, db);
      }
    } catch {
      v = null;
    }
    sizes.set(db, v);
    return v;
  };

  const groupResults = [];
  const skippedGroups = [];
  const todoCases = [];
  for (const g of GROUPS) {
    if (g.todo) {
      skippedGroups.push({ group: g, reason: 'todo' });
      continue;
    }
    const all = groupCases(g, c);
    for (const k of all) if (k.todo) todoCases.push({ group: g, kase: k });
    const sg = saved.groups.find((x) => x.id === g.id);
    if (!sg) {
      skippedGroups.push({ group: g, reason: 'filtered' });
      continue;
    }
    const results = [];
    for (const sc of sg.cases) {
      const kase = all.find((k) => k.id === sc.id) ?? {
        id: sc.id,
        label: sc.label,
        dbbackup: sc.command?.startsWith('dbbackup') ? () => [] : undefined,
      };
      results.push({
        kase,
        id: sc.id,
        label: sc.label,
        command: sc.command,
        runs: sc.runs,
        failed: sc.failed,
        skipped: sc.skipped,
      });
    }
    groupResults.push({ group: g, results });
    if (g.db) for (const d of [g.db(c)].flat()) c.dbSize(d);
  }
  const dbSizes = [...sizes.entries()].filter(([d, s]) => s && !d.startsWith('bench_pg_scale'));
  const md = renderMarkdown({
    c,
    groupResults,
    skippedGroups,
    todoCases,
    targets: evaluateTargets(groupResults),
    facts: Object.entries(saved.machine ?? {}),
    started: new Date(saved.started),
    finished: new Date(saved.finished),
    failures: saved.failures ?? [],
    fixturesBuilt: saved.fixturesBuilt ?? [],
    dbSizes,
    note: `Re-rendered from \`${path.basename(jsonPath)}\` (the runs saved by that benchmark) with \`node bench/run.mjs --render\` on ${new Date().toISOString().slice(0, 10)}; nothing was measured again.${cfg.note ? ' ' + cfg.note : ''}`,
  });
  const out = jsonPath.replace(/\.json$/, '.md');
  fs.writeFileSync(out, md + '\n');
  const isLatest = !saved.smoke && !saved.only && saved.scale === 'full';
  if (isLatest) fs.writeFileSync(path.join(path.dirname(jsonPath), 'latest.md'), md + '\n');
  process.stdout.write(md + '\n');
  log(`\nwritten: ${path.relative(process.cwd(), out)}${isLatest ? ' and latest.md' : ''}`);
  return 0;
}
