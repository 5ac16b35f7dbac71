import { Spinner } from '@inkjs/ui';
import { Text } from 'ink';
import { useRef, type ReactNode } from 'react';
import { formatDuration } from '../../pipeline/progress.js';
import { StepMeter } from '../meter.js';
import { DoneLines, Outcome, Running, StepBar, useOperation } from '../operation.js';
import type { PitrDone, PitrPreview } from '../services.js';
import { label, useApp, useTerminalSize } from '../ui.js';

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
  const { services } = useApp();
  const { rows } = useTerminalSize();
  const started = useRef(Date.now());
  const current = useRef<StepState | undefined>(undefined);
  const lines = useRef<Array<{ text: string; ok: boolean }>>([]);
  useOperation(
    (signal) =>
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
    props,
  );
  const r = props.preview.request;
  const s = current.current;
  const f = s?.meter.frame();
  const elapsed = formatDuration((Date.now() - started.current) / 1000);
  return (
    <Running title="point-in-time restore: running">
      <Text>
        {label('Base')}
        {r.base || 'latest'} from {r.archive}
      </Text>
      <Text>
        {label('Into')}
        {props.preview.into}
      </Text>
      <DoneLines lines={lines.current.slice(-Math.max(2, rows - 12))} />
      {s && f ? (
        <StepBar
          name={s.name}
          percent={f.percent}
          detail={`${f.done} of ${f.total} · ${f.rate} · ETA ${f.left}`}
        />
      ) : (
        <Spinner label={`Working (preparing, starting the server, or waiting for it) · ${elapsed}`} />
      )}
    </Running>
  );
}

export function PitrResult(
  props:
    | { at: 'done'; preview: PitrPreview; done: PitrDone }
    | { at: 'failed'; preview: PitrPreview; error: unknown },
): ReactNode {
  const what = 'point-in-time restore';
  if (props.at === 'failed') return <Outcome what={what} error={props.error} />;
  return (
    <Outcome
      what={what}
      headline={`Restored ${props.preview.request.base || 'latest'} into ${props.preview.into} in ${formatDuration(props.done.seconds)}`}
    >
      {props.done.lines.map((l) => (
        <Text key={l}>{l}</Text>
      ))}
    </Outcome>
  );
}
