import { Spinner } from '@inkjs/ui';
import { Text, useInput } from 'ink';
import { useEffect, useState, type ReactNode } from 'react';
import type { OperationRecord } from '../../ops/record.js';
import { formatBytes, formatDuration } from '../../pipeline/progress.js';
import type { HistoryView } from '../services.js';
import { ErrorView, fit, Frame, SelectList, useApp } from '../ui.js';

function localTime(iso: string): string {
  const d = new Date(iso);
  const pad = (n: number): string => String(n).padStart(2, '0');
  return `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function historyLine(r: OperationRecord): string {
  const outcome = r.dryRun ? `${r.outcome} (dry)` : r.outcome;
  return [
    fit(localTime(r.time), 11),
    fit(r.command, 16),
    fit(r.database ?? '', 14),
    fit(outcome, 12),
    fit(formatDuration(r.durationSeconds), 7),
    fit(r.bytes === undefined ? '' : formatBytes(r.bytes), 10),
  ].join(' ');
}

/** Past operations from the audit log, newest first (what `history` prints). */
export function HistoryScreen(): ReactNode {
  const { services, nav } = useApp();
  const [view, setView] = useState<HistoryView | undefined>();
  const [error, setError] = useState<unknown>();
  const [selected, setSelected] = useState<OperationRecord | undefined>();
  useEffect(() => {
    services.history(200).then((v) => {
      setView(v);
      setSelected(v.records[0]);
    }, setError);
  }, [services]);
  useInput((_input, key) => {
    if (key.escape) nav.back();
  });
  const detail = selected
    ? selected.outcome === 'success'
      ? (selected.backup ?? selected.destination ?? '')
      : `${selected.error ?? ''}${selected.hint ? ` (hint: ${selected.hint})` : ''}`
    : '';
  return (
    <Frame title="history" legend="↑/↓ move · esc back · q quit">
      {error ? <ErrorView error={error} /> : null}
      {!view && !error ? <Spinner label="Reading the audit log…" /> : null}
      {view ? (
        <>
          <Text dimColor>{view.file}</Text>
          <Text bold>
            {[
              fit('TIME', 11),
              fit('OPERATION', 16),
              fit('DATABASE', 14),
              fit('RESULT', 12),
              fit('TOOK', 7),
              'SIZE',
            ].join(' ')}
          </Text>
          {view.records.length ? (
            <SelectList
              height={12}
              items={view.records.map((r) => ({ key: r.id, label: historyLine(r) }))}
              onHighlight={(item) => setSelected(view.records.find((r) => r.id === item?.key))}
              onSelect={() => undefined}
            />
          ) : (
            <Text>No operations recorded yet.</Text>
          )}
          <Text dimColor>{fit(detail, 78).trimEnd()}</Text>
        </>
      ) : null}
    </Frame>
  );
}
