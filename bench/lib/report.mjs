// Summaries (medians, paired ratios, targets) and the Markdown report.
import fs from 'node:fs';
import os from 'node:os';
import { RSS_TARGET_MB } from './cases.mjs';
import { GNU_TIME } from './measure.mjs';
import { cell, fmt, fmtMB, max, median, min, toolVersion, trySh } from './util.mjs';
import { REPO_DIR } from './config.mjs';

/** Per-case figures over the counted (non-warm-up) runs. */
export function summarize(r) {
  const runs = r.runs.filter((m) => !m.warm);
  const pick = (k) => runs.map((m) => m[k]);
  return {
    n: runs.length,
    wall: median(pick('wall')),
    wallMin: runs.length ? min(pick('wall')) : NaN,
    wallMax: runs.length ? max(pick('wall')) : NaN,
    cpu: median(pick('cpu')),
    serverCpu: median(pick('serverCpu')),
    auxCpu: median(pick('auxCpu').filter((x) => x !== undefined)),
    otherCpu: median(pick('otherCpu')),
    rssMaxMB: runs.length ? max(pick('rssMaxKb')) / 1024 : NaN,
    rssName: runs.find((m) => m.rssMaxName)?.rssMaxName ?? '',
    rssTreeMB: runs.length ? max(pick('rssTreeKb')) / 1024 : NaN,
    out: median(pick('outBytes').filter((x) => x !== null)),
  };
}

/** Ratios of a over b: median of the per-round ratios (paired), and the ratio of the medians. */
export function pairRatio(ra, rb) {
  const byRound = new Map(rb.runs.filter((m) => !m.warm).map((m) => [m.round, m]));
  const wall = [];
  const cpu = [];
  for (const m of ra.runs.filter((x) => !x.warm)) {
    const o = byRound.get(m.round);
    if (!o) continue;
    wall.push(m.wall / o.wall);
    if (o.cpu > 0) cpu.push(m.cpu / o.cpu);
  }
  const sa = summarize(ra);
  const sb = summarize(rb);
  return {
    n: wall.length,
    wall: median(wall),
    wallMin: wall.length ? min(wall) : NaN,
    wallMax: wall.length ? max(wall) : NaN,
    ofMedians: sa.wall / sb.wall,
    cpu: median(cpu),
    out: Number.isFinite(sa.out) && sb.out > 0 ? sa.out / sb.out : NaN,
    sa,
    sb,
  };
}

/** Share of the machine's CPU capacity that other jobs used during these cases' counted runs. */
export function busyShare(...rs) {
  let other = 0;
  let capacity = 0;
  for (const r of rs)
    for (const m of r.runs.filter((x) => !x.warm)) {
      other += m.otherCpu;
      capacity += m.wall * os.availableParallelism();
    }
  return capacity > 0 ? other / capacity : NaN;
}

export function evaluateTargets(groupResults) {
  const rows = [];
  for (const { group, results } of groupResults) {
    const byId = new Map(results.map((r) => [r.id, r]));
    for (const t of group.targets ?? []) {
      const a = byId.get(t.a);
      const bs = t.b.map((id) => byId.get(id)).filter((r) => r && summarize(r).n > 0);
      if (!a || summarize(a).n === 0 || bs.length === 0) {
        rows.push({ label: t.label, measured: 'not measured', result: '–' });
        continue;
      }
      // best = the anchor with the lowest median wall; the ratio is paired against it
      const b = bs.reduce((x, y) => (summarize(y).wall < summarize(x).wall ? y : x));
      const p = pairRatio(a, b);
      let ok = p.wall <= t.ratio;
      let measured =
        `wall ${fmt(p.wall)}× (${fmt(p.sa.wall)} s vs ${fmt(p.sb.wall)} s${t.best ? `, best = ${b.id}` : ''}); ` +
        `cpu ${fmt(p.cpu)}× (${fmt(p.sa.cpu)} s vs ${fmt(p.sb.cpu)} s)`;
      if (t.sizeAtMost) {
        const sizeOk = p.sa.out <= p.sb.out;
        measured += `; output ${fmtMB(p.sa.out)} vs ${fmtMB(p.sb.out)} MB`;
        ok = ok && sizeOk;
      }
      rows.push({ label: t.label, measured, result: ok ? 'PASS' : 'MISS', noise: busyShare(a, b) });
    }
  }
  // memory: every dbbackup case that ran
  let worst = { mb: 0 };
  let worstTree = { mb: 0 };
  for (const { group, results } of groupResults) {
    for (const r of results) {
      if (!r.kase.dbbackup) continue;
      const s = summarize(r);
      if (s.n === 0) continue;
      if (s.rssMaxMB > worst.mb) worst = { mb: s.rssMaxMB, where: `${group.id}/${r.id}`, name: s.rssName };
      if (s.rssTreeMB > worstTree.mb) worstTree = { mb: s.rssTreeMB, where: `${group.id}/${r.id}` };
    }
  }
  if (worst.where) {
    rows.push({
      label: `peak RSS ≤ ${RSS_TARGET_MB} MB — largest single process, every dbbackup case`,
      measured: `${fmt(worst.mb, 1)} MB (${worst.where}${worst.name ? ', ' + worst.name : ''})`,
      result: worst.mb <= RSS_TARGET_MB ? 'PASS' : 'MISS',
    });
    rows.push({
      label: `peak RSS ≤ ${RSS_TARGET_MB} MB — whole process tree (sum, sampled), every dbbackup case`,
      measured: `${fmt(worstTree.mb, 1)} MB (${worstTree.where})`,
      result: worstTree.mb <= RSS_TARGET_MB ? 'PASS' : 'MISS',
    });
  }
  return rows;
}

// ------------------------------------------------------------------ machine facts
export function machineFacts(c) {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const model = /model name\s*:\s*(.+)/.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? '?';
  const mhz = /cpu MHz\s*:\s*([\d.]+)/.exec(cpuinfo)?.[1];
  const osName = /PRETTY_NAME="?([^"\n]+)"?/.exec(safeRead('/etc/os-release'))?.[1] ?? os.type();
  const commit = trySh('git', ['-C', REPO_DIR, 'rev-parse', '--short', 'HEAD']);
  const dirty = trySh('git', ['-C', REPO_DIR, 'status', '--porcelain', '--', 'src', 'bin', 'package.json']);
  const df = trySh('df', ['-h', '--output=source,fstype,size,avail', c.work])?.split('\n')[1]?.trim();
  const facts = [
    ['CPU', `${model}${mhz ? ` (${Math.round(Number(mhz))} MHz)` : ''}`],
    ['cores (available to Node)', `${os.availableParallelism()} (nproc ${os.cpus().length})`],
    ['memory', `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`],
    ['kernel / OS', `Linux ${os.release()} / ${osName}`],
    ['scratch disk', df ?? '?'],
    ['Node.js', process.version],
    [
      'dbbackup',
      `${trySh(process.execPath, [c.cfg.dbbackup, '--version']) ?? '?'} (git ${commit ?? '?'}${dirty ? ' + uncommitted changes' : ''}${c.distHash ? `; dist/ sha256 ${c.distHash}…, copied at the start so that every run used the same build` : ''})`,
    ],
  ];
  if (c.pg?.version) {
    facts.push([
      'PostgreSQL server',
      `${c.pg.versionString?.split(' on ')[0] ?? c.pg.version} at ${c.pg.host}:${c.pg.port} as ${c.pg.user}`,
    ]);
  }
  if (c.my?.version)
    facts.push([
      'MariaDB/MySQL server',
      `${c.my.version} at ${c.my.host === 'localhost' ? 'localhost (socket)' : c.my.host} as ${c.my.user}`,
    ]);
  const tools = [
    ['pg_dump', '--version'],
    ['pg_restore', '--version'],
    ['psql', '--version'],
    ['pgbench', '--version'],
    ['mysqldump', '--version'],
    ['mariadb', '--version'],
    ['zstd', '-V'],
    ['gzip', '--version'],
    ['pigz', '--version'],
    ['bash', '--version'],
  ];
  const tv = tools.map(
    ([t, f]) => `${t}: ${(toolVersion(t, f) ?? 'not installed').replace(/^\*+\s*|\s*\*+$/g, '')}`,
  );
  facts.push(['tools', tv.join('; ')]);
  facts.push([
    'measurement',
    GNU_TIME ? 'GNU time (wait4 rusage) + /proc sampling' : '/proc only (no /usr/bin/time)',
  ]);
  return facts;
}

function safeRead(p) {
  try {
    return fs.readFileSync(p, 'utf8');
  } catch {
    return '';
  }
}

// ------------------------------------------------------------------ Markdown
export function renderMarkdown({
  c,
  groupResults,
  skippedGroups,
  todoCases,
  targets,
  facts,
  started,
  finished,
  failures,
  fixturesBuilt,
  dbSizes,
  note,
}) {
  const L = [];
  const cfg = c.cfg;
  const date = started.toISOString().slice(0, 10);
  L.push(
    `# dbbackup benchmark — ${date}, scale \`${cfg.scale}\`${cfg.smoke ? ' (smoke)' : ''}${cfg.only ? ` (only \`${cfg.only}\`)` : ''}`,
  );
  L.push('');
  L.push(
    `Generated by \`node bench/run.mjs\` (${cfg.smoke ? '`npm run bench:smoke`' : '`npm run bench`'}${cfg.only ? ` --only '${cfg.only}'` : ''}), ` +
      `${started.toISOString().replace('T', ' ').slice(0, 19)} → ${finished.toISOString().slice(11, 19)} UTC ` +
      `(${((finished - started) / 60000).toFixed(1)} min). ` +
      `Each case: ${cfg.warmup} warm-up + ${cfg.runs} counted runs (${cfg.runsSmall} for the tiny / many-table cases), ` +
      'the cases of a group interleaved round by round (order reversed every other round).',
  );
  L.push('');
  if (note) {
    L.push(note);
    L.push('');
  }
  L.push('## Targets (goals, not assertions)');
  L.push('');
  L.push('| target | measured: paired median ratio (medians) | machine busy with other work | result |');
  L.push('|---|---|---:|---|');
  for (const t of targets)
    L.push(
      `| ${cell(t.label)} | ${cell(t.measured)} | ${Number.isFinite(t.noise) ? Math.round(t.noise * 100) + '%' : ''} | **${t.result}** |`,
    );
  L.push('');
  L.push(
    'PASS/MISS is judged on the wall ratio (and output size where stated). When other jobs kept the machine busy ' +
      '(third column), both sides of a pair ran under the same contention, but the ratio is compressed or stretched ' +
      'by it: the cpu ratio (user+sys of the client process tree) is the steadier figure then.',
  );
  L.push('');
  if (failures.length) {
    L.push('## Failures');
    L.push('');
    for (const f of failures) {
      L.push(`- **${f.where}**:`);
      L.push('');
      L.push('  ```');
      for (const line of f.message.split('\n')) L.push(`  ${line.replace(/```/g, "'''")}`);
      L.push('  ```');
    }
    L.push('');
  }

  L.push('## Machine');
  L.push('');
  L.push('| item | value |');
  L.push('|---|---|');
  for (const [k, v] of facts) L.push(`| ${k} | ${cell(v)} |`);
  const f = cfg.fixtures;
  L.push(
    `| fixtures | \`${c.db.pg}\`: pgbench -s ${f.pgScale} + docs ${f.docsMB} MB target; \`${c.db.pgTiny}\`: 100 rows; ` +
      `\`${c.db.pgMany}\`: ${f.manyTables} tables; ` +
      (f.pagilaRentals ? `\`${c.db.pgPagila}\`: Pagila-like, ${f.pagilaRentals} rentals; ` : '') +
      `scaling: pgbench -s ${f.scaling.join(', ')}; \`${c.db.my}\`: ~${f.myMB} MB` +
      (f.pagilaRentals ? `; \`${c.db.myTiny}\`: 100 rows` : '') +
      `${fixturesBuilt.length ? ` (built in this run: ${fixturesBuilt.join(', ')})` : ''} |`,
  );
  if (dbSizes.length)
    L.push(`| database sizes | ${dbSizes.map(([d, s]) => `${d} ${fmtMB(s, 0)} MB`).join('; ')} |`);
  L.push('');
  L.push('How to read the columns:');
  L.push('- **wall**: median seconds of the counted runs, (min–max).');
  L.push(
    '- **cpu**: user+sys seconds of the whole process tree of the command (node + pg_dump + zstd …, or bash + every stage of the pipeline), from wait4 rusage; median.',
  );
  L.push(
    '- **srv cpu**: CPU seconds of the database server meanwhile (postmaster + backends, or mariadbd), from /proc; median. Not included in cpu.',
  );
  L.push(
    '- **other**: CPU seconds used by anything else on the machine during the run (noise from other jobs); median. Large values mean the wall time is inflated.',
  );
  L.push(
    `- **RSS max**: peak RSS of the largest single process (kernel ru_maxrss), worst run. **RSS tree**: peak of the sum of VmRSS over all processes of the tree, sampled every ${process.env.SAMPLE_MS ?? 50} ms (shared pages counted per process), worst run. The database server is in neither.`,
  );
  L.push(
    '- **ratio**: dbbackup ÷ anchor, the median of the per-round ratios (runs of the same round are adjacent in time), with (min–max) over rounds; *of medians* is the ratio of the two medians.',
  );
  L.push('');

  for (const { group, results } of groupResults) {
    if (group.kind === 'scaling') {
      renderScaling(L, group, results, c);
      continue;
    }
    L.push(`## ${group.title} (\`${group.id}\`)`);
    L.push('');
    const dbs = group.db ? [group.db(c)].flat() : [];
    const sizeText = dbs
      .map((d) => [d, dbSizes.find(([x]) => x === d)?.[1]])
      .filter(([, s]) => s)
      .map(([d, s]) => `${d} ${fmtMB(s, 0)} MB`)
      .join(', ');
    if (sizeText) L.push(`Database size on disk: ${sizeText}.${group.prepNote ? ' ' + group.prepNote : ''}`);
    L.push('');
    noiseNote(L, results);
    L.push(
      '| case | runs | wall s median (min–max) | cpu s | srv cpu s | other s | RSS max MB | RSS tree MB | output MB |',
    );
    L.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of results) {
      const name = `${r.kase.dbbackup ? '**' + cell(r.label) + '**' : cell(r.label)} \`${r.id}\``;
      if (r.skipped) {
        L.push(`| ${name} | – | skipped: ${cell(r.skipped)} | | | | | | |`);
        continue;
      }
      const s = summarize(r);
      if (s.n === 0) {
        L.push(`| ${name} | 0 | FAILED: ${cell(r.failed ?? 'no run')} | | | | | | |`);
        continue;
      }
      L.push(
        `| ${name}${r.failed ? ' (FAILED later)' : ''} | ${s.n} | **${fmt(s.wall)}** (${fmt(s.wallMin)}–${fmt(s.wallMax)}) | ${fmt(s.cpu)} | ` +
          `${fmt(s.serverCpu)} | ${fmt(s.otherCpu)} | ${fmt(s.rssMaxMB, 1)}${s.rssName ? ` (${s.rssName})` : ''} | ${fmt(s.rssTreeMB, 1)} | ${fmtMB(s.out)} |`,
      );
    }
    L.push('');
    if (group.auxName) {
      const aux = results
        .map((r) => [r.id, summarize(r).auxCpu])
        .filter(([, x]) => Number.isFinite(x))
        .map(([id, x]) => `\`${id}\` ${fmt(x)} s`);
      if (aux.length) {
        L.push(
          `CPU of ${group.auxName} during each case's runs (median; in neither *cpu* nor *other*): ${aux.join(', ')}.`,
        );
        L.push('');
      }
    }
    const byId = new Map(results.map((r) => [r.id, r]));
    const pairs = (group.pairs ?? []).filter(
      ([a, b]) => byId.get(a) && byId.get(b) && summarize(byId.get(a)).n && summarize(byId.get(b)).n,
    );
    if (pairs.length) {
      L.push('| dbbackup case | vs anchor | wall ratio (paired) | of medians | cpu ratio | output ratio |');
      L.push('|---|---|---:|---:|---:|---:|');
      for (const [a, b] of pairs) {
        const p = pairRatio(byId.get(a), byId.get(b));
        L.push(
          `| \`${a}\` | ${cell(byId.get(b).label)} | **${fmt(p.wall)}** (${fmt(p.wallMin)}–${fmt(p.wallMax)}) | ${fmt(p.ofMedians)} | ${fmt(p.cpu)} | ${fmt(p.out)} |`,
        );
      }
      L.push('');
    }
    L.push('<details><summary>Exact commands</summary>');
    L.push('');
    for (const r of results) if (r.command) L.push(`- \`${r.id}\`: \`${r.command.replace(/`/g, "'")}\``);
    L.push('');
    L.push('</details>');
    L.push('');
  }

  const todoGroups = skippedGroups.filter((g) => g.reason === 'todo');
  if (todoGroups.length || todoCases.length) {
    L.push('## Not measured yet (TODO hooks in `bench/lib/cases.mjs`)');
    L.push('');
    for (const g of todoGroups) L.push(`- \`${g.group.id}\` — ${g.group.title}: ${g.group.todo}`);
    for (const { group, kase } of todoCases)
      L.push(`- \`${group.id}/${kase.id}\` — ${kase.label}: ${kase.todo}`);
    L.push('');
  }
  const filtered = skippedGroups.filter((g) => g.reason !== 'todo');
  if (filtered.length) {
    L.push(`Groups not selected in this run: ${filtered.map((g) => `\`${g.group.id}\``).join(', ')}.`);
    L.push('');
  }
  return L.join('\n');
}

function noiseNote(L, results) {
  const share = busyShare(...results);
  if (share > 0.15) {
    L.push(
      `> **Noisy:** other jobs used ${Math.round(share * 100)}% of the machine's CPU capacity during this group's counted runs ` +
        '(column *other*). Wall times are inflated by that; compare the cpu columns and the paired ratios, not absolute walls.',
    );
    L.push('');
  }
}

function renderScaling(L, group, results, c) {
  L.push(`## ${group.title} (\`${group.id}\`)`);
  L.push('');
  noiseNote(L, results);
  L.push(
    '| database | DB MB | runs | wall s median (min–max) | cpu s | srv cpu s | other s | RSS max MB | RSS tree MB | output MB | s per GB of DB |',
  );
  L.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  const pts = [];
  for (const r of results) {
    const s = summarize(r);
    const db = c.db.pgScale(r.kase.scale);
    const size = c.dbSize(db);
    if (s.n === 0) {
      L.push(
        `| ${db} | ${fmtMB(size, 0)} | 0 | ${r.failed ? 'FAILED: ' + cell(r.failed) : (r.skipped ?? '–')} | | | | | | | |`,
      );
      continue;
    }
    pts.push({ x: size / 1e9, y: s.wall, rss: s.rssMaxMB, tree: s.rssTreeMB });
    L.push(
      `| ${db} | ${fmtMB(size, 0)} | ${s.n} | **${fmt(s.wall)}** (${fmt(s.wallMin)}–${fmt(s.wallMax)}) | ${fmt(s.cpu)} | ${fmt(s.serverCpu)} | ` +
        `${fmt(s.otherCpu)} | ${fmt(s.rssMaxMB, 1)} | ${fmt(s.rssTreeMB, 1)} | ${fmtMB(s.out)} | ${fmt(s.wall / (size / 1e9))} |`,
    );
  }
  L.push('');
  if (pts.length >= 2) {
    // least squares wall = a + b·GB
    const n = pts.length;
    const mx = pts.reduce((s, p) => s + p.x, 0) / n;
    const my = pts.reduce((s, p) => s + p.y, 0) / n;
    const sxx = pts.reduce((s, p) => s + (p.x - mx) ** 2, 0);
    const sxy = pts.reduce((s, p) => s + (p.x - mx) * (p.y - my), 0);
    const syy = pts.reduce((s, p) => s + (p.y - my) ** 2, 0);
    const b = sxy / sxx;
    const a = my - b * mx;
    const r2 = syy > 0 ? (sxy * sxy) / (sxx * syy) : 1;
    const rss = pts.map((p) => p.rss);
    const tree = pts.map((p) => p.tree);
    const sizeSpan = max(pts.map((p) => p.x)) / min(pts.map((p) => p.x));
    const yMax = max(pts.map((p) => p.y));
    const fixedDominates = !(b > 0) || a > 0.5 * yMax;
    const linear = fixedDominates
      ? `the fixed cost (${fmt(a)} s) dominates at these sizes, so linearity is not judged`
      : `R² = ${fmt(r2, 3)}: ${r2 >= 0.98 ? '**roughly linear**' : '**not linear**'}, ${fmt(1000 / b, 0)} MB of database per extra second`;
    L.push(
      `Fit: wall ≈ ${fmt(a)} s + ${fmt(b)} s/GB × size (${linear}). ` +
        `Peak RSS of the largest process ${fmt(min(rss), 1)}–${fmt(max(rss), 1)} MB and of the tree ${fmt(min(tree), 1)}–${fmt(max(tree), 1)} MB ` +
        `over a ${fmt(sizeSpan, 1)}× size range (${max(rss) / min(rss) <= 1.25 ? '**flat**' : '**grows with size**'}: max/min = ${fmt(max(rss) / min(rss))}).`,
    );
    L.push('');
  }
  L.push('<details><summary>Exact commands</summary>');
  L.push('');
  for (const r of results) if (r.command) L.push(`- \`${r.id}\`: \`${r.command.replace(/`/g, "'")}\``);
  L.push('');
  L.push('</details>');
  L.push('');
}
