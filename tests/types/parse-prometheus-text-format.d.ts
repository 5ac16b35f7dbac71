declare module 'parse-prometheus-text-format' {
  /** prom2json's shape: one entry per metric family. */
  export interface ParsedFamily {
    name: string;
    help: string;
    type: string;
    metrics: Array<{ value: string; labels?: Record<string, string>; timestamp_ms?: string }>;
  }
  export default function parsePrometheusTextFormat(text: string): ParsedFamily[];
}
