#!/usr/bin/env node
// Prints the fault matrix from vitest's JSON report (tmp/vitest-results.json, written by `npm test`):
// one line per case under tests/faults/ (operation, fault, invariant in the test's name), then
// "Fault matrix: N passed, N failed". Exit 1 when a case failed or the report has no fault cases.
import { readFileSync } from 'node:fs';
import path from 'node:path';

const file = process.argv[2] ?? 'tmp/vitest-results.json';
let report;
try {
  report = JSON.parse(readFileSync(file, 'utf8'));
} catch (err) {
  console.error(`fault matrix: cannot read ${file}: ${err.message}`);
  process.exit(1);
}
const counts = { passed: 0, failed: 0, other: 0 };
const lines = [];
for (const suite of report.testResults ?? []) {
  const rel = path.relative(process.cwd(), suite.name);
  if (!rel.startsWith(`tests${path.sep}faults${path.sep}`)) continue;
  for (const t of suite.assertionResults ?? []) {
    const status = t.status === 'passed' ? 'passed' : t.status === 'failed' ? 'failed' : 'other';
    counts[status] += 1;
    const mark = status === 'passed' ? 'ok  ' : status === 'failed' ? 'FAIL' : 'SKIP';
    lines.push(`${mark} ${path.basename(rel, '.test.ts')}: ${[...t.ancestorTitles, t.title].join(' › ')}`);
  }
}
for (const line of lines) console.log(line);
const total = counts.passed + counts.failed + counts.other;
console.log(
  `Fault matrix: ${counts.passed} passed, ${counts.failed} failed${counts.other ? `, ${counts.other} not run` : ''}`,
);
process.exit(total === 0 || counts.failed > 0 || counts.other > 0 ? 1 : 0);
