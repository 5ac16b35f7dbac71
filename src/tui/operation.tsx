import { Box, Text, useInput } from 'ink';
import { useEffect, useRef, useState, type ReactNode } from 'react';
import { formatBytes } from '../pipeline/progress.js';
import type { MemberView } from './cluster-watch.js';
import { textBar } from './meter.js';
import { ErrorView, fit, Frame, label, useApp, useColor } from './ui.js';

/**
 * The one shape of the screens that run an operation (a backup, a restore, a point-in-time
 * restore): `useOperation` starts it, `Running` frames it while it runs (the steps done, the
 * current one's bar or a spinner), `Outcome` says how it ended and waits for enter/esc.
 */

/**
 * Starts `start` once, under nav.run (a quit aborts its signal and waits for it), and redraws the
 * screen every 250 ms while it runs, after `onTick` (a meter sampled into the screen's state).
 * Once only: a re-render must never start a second operation. The callbacks of the latest render
 * are the ones called.
 */
export function useOperation<T>(
  start: (signal: AbortSignal) => Promise<T>,
  on: { onDone: (value: T) => void; onFailed: (error: unknown) => void; onTick?: () => void },
): void {
  const { nav } = useApp();
  const [, setTick] = useState(0);
  const latest = useRef({ start, on });
  latest.current = { start, on };
  const started = useRef(false);
  useEffect(() => {
    if (started.current) return;
    started.current = true;
    const timer = setInterval(() => {
      latest.current.on.onTick?.();
      setTick((t) => t + 1);
    }, 250);
    nav
      .run((signal) => latest.current.start(signal))
      .then(
        (value) => latest.current.on.onDone(value),
        (error: unknown) => latest.current.on.onFailed(error),
      )
      .finally(() => clearInterval(timer));
  }, [nav]);
}

/** A running operation's frame: its title, what it shows, and how to stop it. */
export function Running(props: { title: string; children?: ReactNode }): ReactNode {
  return (
    <Frame title={props.title} legend="q/ctrl-c stop and quit (asks first)">
      {props.children}
    </Frame>
  );
}

/** What is done so far, one line each: ✓ in green, or ✗ in red for what went wrong. */
export function DoneLines(props: {
  lines: ReadonlyArray<string | { text: string; ok: boolean }>;
}): ReactNode {
  const c = useColor();
  return props.lines.map((l, i) => {
    const { text, ok } = typeof l === 'string' ? { text: l, ok: true } : l;
    return (
      <Text key={`${i}:${text}`} color={ok ? c('green') : c('red')}>
        {ok ? '✓' : '✗'} {text}
      </Text>
    );
  });
}

/** A long step: its name (if given), a bar with its percentage and what it has done. */
export function StepBar(props: {
  name?: string;
  percent: number;
  detail?: string;
  children?: ReactNode;
}): ReactNode {
  const c = useColor();
  return (
    <Box flexDirection="column">
      {props.name === undefined ? null : <Text>{props.name}</Text>}
      <Text>
        <Text color={c('green')}>{textBar(props.percent, 30)}</Text> {props.percent.toFixed(0)}%
        {props.detail === undefined ? '' : ` · ${props.detail}`}
      </Text>
      {props.children}
    </Box>
  );
}

/**
 * The databases of a cluster operation, one line each (name, bar, state, bytes): `active` names
 * the state of the ones in progress (dumping, restoring), padded to `stateWidth`; the first `room`
 * are shown, under `header`.
 */
export function MemberList(props: {
  members: readonly MemberView[];
  header: string;
  active: string;
  stateWidth: number;
  room: number;
}): ReactNode {
  const c = useColor();
  const { members, room } = props;
  const line = (m: MemberView): string => {
    const pct = m.state === 'done' ? 100 : m.estimate ? Math.min(99, (100 * m.bytes) / m.estimate) : 0;
    const state = m.state === 'active' ? props.active : m.state;
    return `${fit(m.name, 24)} ${textBar(pct, 20)} ${fit(state, props.stateWidth)} ${formatBytes(m.bytes)}`;
  };
  return (
    <Box flexDirection="column">
      <Text>{props.header}</Text>
      {members.slice(0, room).map((m) => (
        <Text
          key={m.name}
          color={m.state === 'failed' ? c('red') : m.state === 'done' ? c('green') : undefined}
        >
          {line(m)}
        </Text>
      ))}
      {members.length > room ? <Text dimColor>… and {members.length - room} more</Text> : null}
    </Box>
  );
}

/**
 * How an operation ended, until enter/esc (`onBack`, else the screen before): `what: failed` with
 * the error (when `headline` is not given), or `what: complete` with the headline in green, its
 * fields (`Name:` and the value, one a line), what the screen adds, and the first warnings.
 */
export function Outcome(
  props: { what: string; legend?: string; onBack?: () => void } & (
    | { error: unknown }
    | {
        headline: ReactNode;
        fields?: ReadonlyArray<readonly [name: string, value: ReactNode]>;
        warnings?: readonly string[];
        children?: ReactNode;
      }
  ),
): ReactNode {
  const { nav } = useApp();
  const c = useColor();
  useInput((_input, key) => {
    if (!(key.return || key.escape)) return;
    if (props.onBack) props.onBack();
    else nav.back();
  });
  const done = 'headline' in props;
  return (
    <Frame
      title={`${props.what}: ${done ? 'complete' : 'failed'}`}
      legend={props.legend ?? 'enter/esc back · q quit'}
    >
      {done ? (
        <>
          <Text color={c('green')} bold>
            {props.headline}
          </Text>
          {(props.fields ?? []).map(([name, value], i) => (
            <Text key={`${i}:${name}`}>
              {label(name)}
              {value}
            </Text>
          ))}
          {props.children}
          {(props.warnings ?? []).slice(0, 5).map((w) => (
            <Text key={w} color={c('yellow')}>
              warning: {w}
            </Text>
          ))}
        </>
      ) : (
        <ErrorView error={props.error} />
      )}
    </Frame>
  );
}
