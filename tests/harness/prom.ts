import parsePrometheusTextFormat from 'parse-prometheus-text-format';

/**
 * A Prometheus textfile, checked as node_exporter's textfile collector would take it: every line a
 * HELP, a TYPE or a sample; TYPE before the family's samples; no series twice; the same label
 * names throughout a family. Parsed with parse-prometheus-text-format (prom2json's shape).
 */

export interface Series {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE =
  /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)$/;

export function parseTextfile(text: string): Series[] {
  if (text && !text.endsWith('\n')) throw new Error('textfile does not end with a newline');
  const typed = new Set<string>();
  for (const line of text.split('\n').filter(Boolean)) {
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (gauge|counter|untyped|histogram|summary)$/.exec(line);
    if (type?.[1]) {
      if (typed.has(type[1])) throw new Error(`TYPE twice for ${type[1]}`);
      typed.add(type[1]);
      continue;
    }
    if (/^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*$/.test(line)) continue;
    const sample = SAMPLE.exec(line);
    if (!sample) throw new Error(`not a textfile line: ${line}`);
    if (!typed.has(sample[1] ?? '')) throw new Error(`sample before its TYPE: ${line}`);
  }
  const series: Series[] = [];
  for (const family of parsePrometheusTextFormat(text)) {
    const names = new Set<string>();
    for (const m of family.metrics) {
      names.add(
        Object.keys(m.labels ?? {})
          .sort()
          .join(','),
      );
      series.push({ name: family.name, labels: m.labels ?? {}, value: Number(m.value) });
    }
    if (names.size > 1) throw new Error(`${family.name} has inconsistent label names`);
  }
  const keys = series.map((s) => `${s.name}${JSON.stringify(Object.entries(s.labels).sort())}`);
  if (new Set(keys).size !== keys.length) throw new Error('a series appears twice');
  return series;
}

/** The value of one series, or undefined. */
export function valueOf(series: Series[], name: string, labels: Record<string, string>): number | undefined {
  return series.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    ?.value;
}
