import { Spinner } from '@inkjs/ui';
import { Box, Text, useInput } from 'ink';
import { useEffect, useRef, useState, type ReactNode } from 'react';
import { formatDuration } from '../../pipeline/progress.js';
import { StepMeter, textBar } from '../meter.js';
import type { PitrDone, PitrPreview } from '../services.js';
import { ErrorView, Frame, label, useApp, useColor, useTerminalSize } from '../ui.js';

interface StepState {
  name: string;
  meter: StepMeter;
}

/**
 * The restore running: each long step (a base backup read and extracted, binlogs checked or
 * replayed) as a bar of the bytes read from the archive, with rate and time left; the steps done
 * and what the restore said of each, above it.
 */
export function PitrRunning(props: {
  preview: PitrPreview;
  onDone: (d: PitrDone) => void;
  onFailed: (e: unknown) => void;
}): ReactNode {
  const { services, nav } = useApp();
  const c = useColor();
  const { rows } = useTerminalSize();
  const [, setTick] = useState(0);
  const started = useRef(Date.now());
  const current = useRef<StepState | undefined>(undefined);
  const lines = useRef<Array<{ text: string; ok: boolean }>>([]);
  const once = useRef(false);
  const callbacks = useRef(props);
  callbacks.current = props;
  useEffect(() => {
    if (once.current) return;
    once.current = true;
    const timer = setInterval(() => setTick((t) => t + 1), 250);
    nav
      .run((signal) =>
        services.runPitr(
          props.preview,
          {
            begin: (name, bytes, total) => {
              current.current = { name, meter: new StepMeter(bytes, total) };
            },
            end: (outcome) => {
              const s = current.current;
              if (s) lines.current.push({ text: `${s.name}: ${outcome}`, ok: outcome === 'done' });
              current.current = undefined;
            },
            note: (line) => lines.current.push({ text: line, ok: true }),
          },
          signal,
        ),
      )
      .then(
        (d) => callbacks.current.onDone(d),
        (e: unknown) => callbacks.current.onFailed(e),
      )
      .finally(() => clearInterval(timer));
  }, [services, nav, props.preview]);
  const r = props.preview.request;
  const s = current.current;
  const f = s?.meter.frame();
  const elapsed = formatDuration((Date.now() - started.current) / 1000);
  return (
    <Frame title="point-in-time restore: running" legend="q/ctrl-c stop and quit (asks first)">
      <Text>
        {label('Base')}
        {r.base || 'latest'} from {r.archive}
      </Text>
      <Text>
        {label('Into')}
        {props.preview.into}
      </Text>
      {lines.current.slice(-Math.max(2, rows - 12)).map((l, i) => (
        <Text key={`${i}:${l.text}`} color={l.ok ? c('green') : c('red')}>
          {l.ok ? '✓' : '✗'} {l.text}
        </Text>
      ))}
      {s && f ? (
        <Box flexDirection="column">
          <Text>{s.name}</Text>
          <Text>
            <Text color={c('green')}>{textBar(f.percent, 30)}</Text> {f.percent.toFixed(0)}% · {f.done} of{' '}
            {f.total} · {f.rate} · ETA {f.left}
          </Text>
        </Box>
      ) : (
        <Spinner label={`Working (preparing, starting the server, or waiting for it) · ${elapsed}`} />
      )}
    </Frame>
  );
}

export function PitrResult(
  props:
    | { at: 'done'; preview: PitrPreview; done: PitrDone }
    | { at: 'failed'; preview: PitrPreview; error: unknown },
): ReactNode {
  const { nav } = useApp();
  const c = useColor();
  useInput((_input, key) => {
    if (key.return || key.escape) nav.back();
  });
  if (props.at === 'failed')
    return (
      <Frame title="point-in-time restore: failed" legend="enter/esc back · q quit">
        <ErrorView error={props.error} />
      </Frame>
    );
  return (
    <Frame title="point-in-time restore: complete" legend="enter/esc back · q quit">
      <Text color={c('green')} bold>
        Restored {props.preview.request.base || 'latest'} into {props.preview.into} in{' '}
        {formatDuration(props.done.seconds)}
      </Text>
      {props.done.lines.map((l) => (
        <Text key={l}>{l}</Text>
      ))}
    </Frame>
  );
}
