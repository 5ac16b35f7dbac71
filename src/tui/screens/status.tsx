import { Spinner } from '@inkjs/ui';
import { Box, Text, useInput } from 'ink';
import { useCallback, useEffect, useState, type ReactNode } from 'react';
import type { StatusReport } from '../services.js';
import { ErrorView, fit, Frame, useApp, useColor, label } from '../ui.js';

/** What `status` reports: connection, server version, tools, compressor, destination. */
export function StatusScreen(): ReactNode {
  const { services, nav } = useApp();
  const c = useColor();
  const [report, setReport] = useState<StatusReport | undefined>();
  const [error, setError] = useState<unknown>();
  const load = useCallback(() => {
    setReport(undefined);
    setError(undefined);
    services.status().then(setReport, setError);
  }, [services]);
  useEffect(load, [load]);
  useInput((input, key) => {
    if (key.escape) nav.back();
    else if (input === 'f') load();
  });
  const ok = (good: boolean): string | undefined => c(good ? 'green' : 'red');
  return (
    <Frame title="status" legend="f refresh · esc back · q quit">
      {error ? <ErrorView error={error} /> : null}
      {!report && !error ? <Spinner label="Checking the server and the tools…" /> : null}
      {report ? (
        <Box flexDirection="column">
          <Text>
            {label('Engine')}
            {report.engine}
          </Text>
          <Text>
            {label('Server')}
            {report.endpoint} as {report.user}
          </Text>
          <Text>
            {label('Connection')}
            <Text color={ok(report.connection.ok)}>
              {report.connection.ok
                ? `ok, ${fit(report.connection.version, 60).trimEnd()}`
                : `FAILED: ${report.connection.error}`}
            </Text>
          </Text>
          {!report.connection.ok && report.connection.hint ? (
            <Text> hint: {report.connection.hint}</Text>
          ) : null}
          <Text>
            {label('Compression')}
            {report.compression}
          </Text>
          <Text>
            {label('Destination')}
            {report.destination.location}{' '}
            <Text color={ok(report.destination.ok)}>({report.destination.detail})</Text>
          </Text>
          <Text bold>Tools:</Text>
          {report.tools.map((t) => (
            <Text key={t.name}>
              {'  '}
              {fit(t.name, 16)}{' '}
              <Text color={ok(Boolean(t.path))}>{fit(t.path ? (t.version ?? '?') : 'MISSING', 10)}</Text>{' '}
              {fit(t.path ?? '', 48).trimEnd()}
            </Text>
          ))}
        </Box>
      ) : null}
    </Frame>
  );
}
