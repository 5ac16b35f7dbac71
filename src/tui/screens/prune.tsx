import { Spinner, TextInput } from '@inkjs/ui';
import { Text, useInput } from 'ink';
import { useEffect, useState, type ReactNode } from 'react';
import { UsageError } from '../../errors.js';
import type { CleanupResult, PlannedBackup } from '../../retention/cleanup.js';
import { formatBytes } from '../../units.js';
import type { PrunePreview, RetentionForm } from '../services.js';
import { ErrorView, fit, Form, Frame, SelectList, useApp, useColor, type FormField } from '../ui.js';

/** What the user types to let the prune delete. */
const CONFIRM = 'prune';

type Step =
  | { at: 'loading' }
  | { at: 'form'; form: RetentionForm }
  | { at: 'planning'; form: RetentionForm }
  | { at: 'preview'; preview: PrunePreview }
  | { at: 'confirm'; preview: PrunePreview }
  | { at: 'running'; preview: PrunePreview }
  | { at: 'result'; result: CleanupResult };

const FIELDS: Array<[keyof RetentionForm, string, string]> = [
  ['keepLast', 'Keep last', 'the n newest backups'],
  ['keepHourly', 'Keep hourly', 'newest of each of the last n hours'],
  ['keepDaily', 'Keep daily', 'newest of each of the last n days'],
  ['keepWeekly', 'Keep weekly', 'newest of each of the last n ISO weeks'],
  ['keepMonthly', 'Keep monthly', 'newest of each of the last n months'],
  ['keepYearly', 'Keep yearly', 'newest of each of the last n years'],
  ['keepWithin', 'Keep within', 'everything this close to the newest (7d, 2w, 1y6m)'],
  ['retentionDays', 'Retention days', 'everything younger than n days…'],
  ['minBackups', 'Min backups', '…and the n newest, whatever their age'],
  ['timeZone', 'Time zone', 'of the day/week/month buckets; blank: local'],
];

/** One backup of the plan as `cleanup` prints it: what happens to it, when, which, and why. */
export function planLine(d: PlannedBackup): string {
  const label =
    d.outcome === 'kept'
      ? 'keep  '
      : d.outcome === 'would delete'
        ? 'DELETE'
        : d.outcome === 'deleted'
          ? 'deleted'
          : 'FAILED';
  const when = d.time.toISOString().replace('T', ' ').slice(0, 16);
  const proven = d.keep && d.state === 'valid' ? ' [checksum verified]' : '';
  return `${label} ${when} ${d.key} (${d.reasons.join(', ')})${proven}${d.error ? `: ${d.error}` : ''}`;
}

/**
 * Prune by policy: the retention rules (from the configuration, editable), the plan `cleanup
 * --dry-run` makes, a typed confirmation, then `cleanup` itself and what it really did.
 */
export function PruneView(props: { onBack: () => void; onDone: (summary: string) => void }): ReactNode {
  const { services } = useApp();
  const [step, setStep] = useState<Step>({ at: 'loading' });
  const [error, setError] = useState<unknown>();

  useEffect(() => {
    services.retentionSettings().then((form) => setStep({ at: 'form', form }), setError);
  }, [services]);

  const plan = (form: RetentionForm): void => {
    setError(undefined);
    setStep({ at: 'planning', form });
    services.previewPrune(form).then(
      (preview) => setStep({ at: 'preview', preview }),
      (e: unknown) => {
        setError(e);
        setStep({ at: 'form', form });
      },
    );
  };
  const run = (preview: PrunePreview): void => {
    setError(undefined);
    setStep({ at: 'running', preview });
    services.runPrune(preview).then(
      (result) => setStep({ at: 'result', result }),
      (e: unknown) => {
        setError(e);
        setStep({ at: 'preview', preview });
      },
    );
  };

  useInput(
    (_input, key) => {
      if (step.at === 'result' && (key.escape || key.return)) {
        props.onDone(summaryOf(step.result));
        return;
      }
      if (!key.escape) return;
      if (step.at === 'preview') setStep({ at: 'form', form: step.preview.form });
      else if (step.at === 'confirm') setStep({ at: 'preview', preview: step.preview });
      else if (step.at === 'loading') props.onBack();
    },
    { isActive: step.at !== 'form' && step.at !== 'planning' && step.at !== 'running' },
  );

  if (step.at === 'form' || step.at === 'loading' || step.at === 'planning') {
    const fields: FormField[] = FIELDS.map(([name, label, help]) => ({
      name,
      label,
      help,
      value: step.at === 'loading' ? '' : step.form[name],
    }));
    return (
      <Frame title="prune by policy: rules" legend="↑/↓ field · type · enter preview · esc back">
        <Text>The retention rules of `cleanup` (from the configuration; blank: not set).</Text>
        {step.at === 'form' ? (
          <Form
            fields={fields}
            onCancel={props.onBack}
            onSubmit={(v) => plan({ ...step.form, ...(v as Partial<RetentionForm>) })}
          />
        ) : (
          <Spinner
            label={step.at === 'loading' ? 'Reading the configuration…' : 'Planning (nothing is deleted)…'}
          />
        )}
        {error ? <ErrorView error={error} /> : null}
      </Frame>
    );
  }

  if (step.at === 'result') return <ResultView result={step.result} />;

  return (
    <PlanView
      step={step}
      error={error}
      onConfirm={() => setStep({ at: 'confirm', preview: step.preview })}
      onRun={() => run(step.preview)}
      onMismatch={() =>
        setError(
          new UsageError(`You did not type ${CONFIRM}: nothing was deleted`, 'Type it exactly, or esc.'),
        )
      }
    />
  );
}

function ResultView(props: { result: CleanupResult }): ReactNode {
  const c = useColor();
  const r = props.result;
  const failed = r.decisions.filter((d) => !d.keep && d.outcome !== 'deleted');
  return (
    <Frame title="prune by policy: done" legend="enter/esc back to the list">
      <Text color={failed.length || r.errors.length ? c('red') : c('green')}>{summaryOf(r)}</Text>
      {r.decisions
        .filter((d) => !d.keep)
        .slice(0, 14)
        .map((d) => (
          <Text key={d.key}>{fit(planLine(d), 78)}</Text>
        ))}
      {r.errors.slice(0, 4).map((e) => (
        <Text key={e} color={c('red')}>
          {fit(e, 78)}
        </Text>
      ))}
    </Frame>
  );
}

/** The dry run's plan (scrollable), then the typed confirmation under the list of what goes. */
function PlanView(props: {
  step: Extract<Step, { at: 'preview' | 'confirm' | 'running' }>;
  error: unknown;
  onConfirm: () => void;
  onRun: () => void;
  onMismatch: () => void;
}): ReactNode {
  const p = props.step.preview.plan;
  // A line is cut at the screen's width: the highlighted backup's whole plan line shows below.
  const [shown, setShown] = useState(p.decisions[0]?.key);
  const highlighted = p.decisions.find((d) => d.key === shown);
  const gone = p.decisions.filter((d) => !d.keep);
  const bytes = gone.reduce((s, d) => s + (d.sizeBytes ?? 0), 0);
  const head = `${p.decisions.length - gone.length} kept, ${gone.length} would be deleted, ${formatBytes(bytes)} would be freed.`;
  if (props.step.at === 'preview')
    return (
      <Frame
        title="prune by policy: preview"
        legend={gone.length ? '↑/↓ scroll · enter delete these… · esc edit the rules' : 'esc edit the rules'}
      >
        <Text dimColor>{fit(`Nothing deleted yet. Retention plan for ${p.location}:`, 78)}</Text>
        <SelectList
          height={12}
          items={p.decisions.map((d) => ({ key: d.key, label: fit(planLine(d), 76) }))}
          onHighlight={(item) => setShown(item?.key)}
          onSelect={() => {
            if (gone.length) props.onConfirm();
          }}
        />
        {highlighted ? <Text dimColor>{planLine(highlighted)}</Text> : null}
        <Text bold>{head}</Text>
        {p.notOurs.length ? (
          <Text dimColor>{p.notOurs.length} not written by dbbackup: left alone.</Text>
        ) : null}
        {p.leftAlone.length ? (
          <Text dimColor>{p.leftAlone.length} of the reference tool: left alone.</Text>
        ) : null}
        {props.error ? <ErrorView error={props.error} /> : null}
      </Frame>
    );

  return (
    <Frame
      title="prune by policy: confirm"
      legend={`type ${CONFIRM} and enter to delete · esc back to the preview`}
    >
      <Text>
        This deletes {gone.length} backup{gone.length === 1 ? '' : 's'} with their sidecars (
        {formatBytes(bytes)}):
      </Text>
      {gone.slice(0, 10).map((d) => (
        <Text key={d.key}> {fit(d.key, 74)}</Text>
      ))}
      {gone.length > 10 ? <Text> … and {gone.length - 10} more (see the preview)</Text> : null}
      <Text>
        It cannot be undone. Type <Text bold>{CONFIRM}</Text> to confirm:
      </Text>
      {props.step.at === 'running' ? (
        <Spinner label="Deleting…" />
      ) : (
        <TextInput
          placeholder={CONFIRM}
          onSubmit={(typed) => {
            if (typed.trim() === CONFIRM) props.onRun();
            else props.onMismatch();
          }}
        />
      )}
      {props.error ? <ErrorView error={props.error} /> : null}
    </Frame>
  );
}

/** What really happened, in `cleanup`'s words. */
function summaryOf(r: CleanupResult): string {
  const kept = r.decisions.filter((d) => d.keep).length;
  const failed = r.decisions.filter((d) => !d.keep && d.outcome !== 'deleted').length;
  return `Pruned: ${kept} kept, ${r.deleted.length} deleted${failed ? `, ${failed} not deleted` : ''}, ${formatBytes(r.freedBytes)} freed.`;
}
