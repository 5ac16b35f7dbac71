import { Spinner, TextInput } from '@inkjs/ui';
import { Text, useInput } from 'ink';
import { useCallback, useEffect, useRef, useState, type ReactNode } from 'react';
import type { CatalogEntry } from '../../verify/listing.js';
import { formatBytes } from '../../pipeline/progress.js';
import { UsageError } from '../../errors.js';
import type { VerifyResult } from '../../verify/verify.js';
import { hasKey, NO_KEY, type KeyEntry } from '../keys.js';
import { PruneView } from './prune.js';
import { ErrorView, fit, Form, Frame, keyEntryOf, keyFields, SelectList, useApp, useColor } from '../ui.js';

type Mode =
  | { at: 'list' }
  | { at: 'verifying'; done: number; total: number; current: string }
  | { at: 'info'; key: string }
  | { at: 'delete'; key: string }
  | { at: 'keys' }
  | { at: 'prune' };

/** The backup's name as the user types it to confirm a delete: no trailing slash for a cluster. */
const nameOf = (key: string): string => key.replace(/\/$/, '');

/** The state shown: a verification's verdict, else what the listing found. */
function stateOf(
  entry: CatalogEntry,
  verified: Map<string, VerifyResult>,
): { state: string; detail: string } {
  const v = verified.get(entry.key);
  return v ? { state: v.state, detail: v.detail } : { state: entry.state, detail: entry.detail };
}

export function entryLine(entry: CatalogEntry, state: string): string {
  const created = entry.created ? entry.created.toISOString().replace('T', ' ').slice(0, 16) : '?';
  const size = entry.sizeBytes === null ? '?' : formatBytes(entry.sizeBytes);
  return `${fit(nameOf(entry.key), 38)} ${fit(created, 16)} ${fit(size, 10)} ${state}`;
}

/** The archive's listing and the verdicts of this session's verifications. */
function useArchive(keys: KeyEntry) {
  const { services } = useApp();
  const [entries, setEntries] = useState<CatalogEntry[] | undefined>();
  const [error, setError] = useState<unknown>();
  const [verified, setVerified] = useState(new Map<string, VerifyResult>());
  // The highlighted backup also lives in a ref: a key that follows ↓ at once (faster than a redraw)
  // must act on the backup ↓ moved to, not on the one the last frame showed.
  const [selected, setSelectedState] = useState<string | undefined>();
  const selectedRef = useRef<string | undefined>(undefined);
  const setSelected = useCallback(
    (next: string | undefined | ((s: string | undefined) => string | undefined)) => {
      const value = typeof next === 'function' ? next(selectedRef.current) : next;
      selectedRef.current = value;
      setSelectedState(value);
    },
    [],
  );
  const [message, setMessage] = useState<string | undefined>();
  const [progress, setProgress] = useState<Extract<Mode, { at: 'verifying' }> | undefined>();

  const refresh = useCallback(() => {
    setEntries(undefined);
    setError(undefined);
    services.listArchive().then((list) => {
      setEntries(list);
      setSelected((s) => (s && list.some((e) => e.key === s) ? s : list[0]?.key));
    }, setError);
  }, [services, setSelected]);
  useEffect(refresh, [refresh]);

  const verify = async (list: string[], deep: boolean): Promise<void> => {
    setMessage(undefined);
    let bad = 0;
    for (const [i, key] of list.entries()) {
      setProgress({ at: 'verifying', done: i, total: list.length, current: key });
      try {
        const r = await services.verify(key, deep, hasKey(keys) ? keys : undefined);
        if (r.state !== 'valid') bad++;
        setVerified((m) => new Map(m).set(key, r));
      } catch (err) {
        setError(err);
        break;
      }
    }
    setProgress(undefined);
    setMessage(
      `${list.length} verified${deep ? ' (deep)' : ''}: ${list.length - bad} valid, ${bad} not valid`,
    );
  };
  return {
    entries,
    error,
    verified,
    selected,
    selectedNow: () => selectedRef.current,
    setSelected,
    message,
    setMessage,
    progress,
    refresh,
    verify,
  };
}

/**
 * The archive manager: every backup in the configured location with its state; verify one (v),
 * deep (d) or all (a), info (i), restore (r), delete (x, after typing its name), prune by the
 * retention policy (p, after a preview and typing `prune`), refresh (f), and
 * the key for encrypted backups (k).
 */
export function ArchiveScreen(): ReactNode {
  const { services, nav } = useApp();
  const c = useColor();
  const [keys, setKeys] = useState<KeyEntry>({ ...NO_KEY, file: services.keyFile ?? '' });
  const [mode, setMode] = useState<Mode>({ at: 'list' });
  const a = useArchive(keys);
  const busy = Boolean(a.progress);

  useInput(
    (input, key) => {
      if (key.escape) return nav.back();
      if (!a.entries || busy) return;
      const target = a.selectedNow();
      if (input === 'f') a.refresh();
      else if (input === 'k') setMode({ at: 'keys' });
      else if (input === 'p') setMode({ at: 'prune' });
      else if (input === 'a' && a.entries.length)
        void a.verify(
          a.entries.map((e) => e.key),
          false,
        );
      else if (!target) return;
      else if (input === 'v' || input === 'd') void a.verify([target], input === 'd');
      else if (input === 'i') setMode({ at: 'info', key: target });
      else if (input === 'r') nav.push(restoreRoute(target));
      else if (input === 'x') setMode({ at: 'delete', key: target });
    },
    { isActive: mode.at === 'list' },
  );

  const back = (): void => setMode({ at: 'list' });
  if (mode.at === 'info') return <InfoView backup={mode.key} onBack={back} />;
  if (mode.at === 'delete')
    return (
      <DeleteView
        backup={mode.key}
        onBack={back}
        onDeleted={(files) => {
          a.setMessage(`Deleted ${nameOf(mode.key)}: ${files} file${files === 1 ? '' : 's'} removed`);
          back();
          a.refresh();
        }}
      />
    );
  if (mode.at === 'prune')
    return (
      <PruneView
        onBack={back}
        onDone={(summary) => {
          a.setMessage(summary);
          back();
          a.refresh();
        }}
      />
    );
  if (mode.at === 'keys')
    return (
      <KeysView
        keys={keys}
        onBack={back}
        onSet={(k) => {
          setKeys(k);
          back();
        }}
      />
    );

  const current = a.entries?.find((e) => e.key === a.selected);
  const currentState = current ? stateOf(current, a.verified) : undefined;
  const legend = 'v/d/a verify/deep/all · i info · r restore · x del · p prune · k key · f refresh';
  return (
    <Frame title="archive manager" legend={legend}>
      <Text dimColor>
        {services.destination}
        {hasKey(keys) ? ' · key given for encrypted backups' : ''}
      </Text>
      <Text bold>
        {'  '}
        {fit('NAME', 38)} {fit('CREATED (UTC)', 16)} {fit('SIZE', 10)} STATE
      </Text>
      {a.error ? <ErrorView error={a.error} /> : null}
      {!a.entries && !a.error ? <Spinner label="Listing the backups…" /> : null}
      {a.entries ? (
        <SelectList
          height={10}
          active={mode.at === 'list'}
          items={a.entries.map((e) => ({ key: e.key, label: entryLine(e, stateOf(e, a.verified).state) }))}
          onHighlight={(item) => a.setSelected(item?.key)}
          onSelect={(item) => {
            a.setSelected(item.key);
            nav.push(restoreRoute(item.key));
          }}
        />
      ) : null}
      {current && currentState && currentState.state !== 'valid' ? (
        <Text color={c('yellow')}>{fit(currentState.detail, 78)}</Text>
      ) : null}
      {a.progress ? (
        <Spinner
          label={`verifying ${a.progress.done + 1} of ${a.progress.total}: ${nameOf(a.progress.current)}`}
        />
      ) : null}
      {a.message ? <Text color={c('green')}>{a.message}</Text> : null}
    </Frame>
  );
}

/** A cluster backup (its key ends with /) restores as a cluster, anything else as one database. */
const restoreRoute = (key: string) =>
  key.endsWith('/') ? ({ name: 'restore-cluster', key } as const) : ({ name: 'restore', key } as const);

function InfoView(props: { backup: string; onBack: () => void }): ReactNode {
  const { services } = useApp();
  const [lines, setLines] = useState<string[] | undefined>();
  const [error, setError] = useState<unknown>();
  useEffect(() => {
    services.info(props.backup).then(setLines, setError);
  }, [services, props.backup]);
  useInput((_input, key) => {
    if (key.escape || key.return) props.onBack();
  });
  return (
    <Frame title={`info: ${nameOf(props.backup)}`} legend="enter/esc back to the list · q quit">
      {error ? <ErrorView error={error} /> : null}
      {!lines && !error ? <Spinner label="Reading the metadata…" /> : null}
      {lines?.map((l) => (
        <Text key={l}>{l}</Text>
      ))}
    </Frame>
  );
}

function DeleteView(props: {
  backup: string;
  onBack: () => void;
  onDeleted: (files: number) => void;
}): ReactNode {
  const { services, nav } = useApp();
  const [error, setError] = useState<unknown>();
  const [deleting, setDeleting] = useState(false);
  const name = nameOf(props.backup);
  useEffect(() => {
    nav.setTyping(true);
    return () => nav.setTyping(false);
  }, [nav]);
  useInput(
    (_input, key) => {
      if (key.escape) props.onBack();
    },
    { isActive: !deleting },
  );
  const remove = (): void => {
    setDeleting(true);
    services.deleteBackup(props.backup).then(
      (files) => props.onDeleted(files.length),
      (e: unknown) => {
        setDeleting(false);
        setError(e);
      },
    );
  };
  return (
    <Frame title={`delete ${name}`} legend="type the name and enter to delete · esc cancel">
      <Text>
        This deletes the backup{props.backup.endsWith('/') ? ' (the whole cluster backup, every member)' : ''}{' '}
        and its .meta.json and .sha256. It cannot be undone.
      </Text>
      <Text>
        Type <Text bold>{name}</Text> to confirm:
      </Text>
      {deleting ? (
        <Spinner label="Deleting…" />
      ) : (
        <TextInput
          placeholder={name}
          onSubmit={(typed) => {
            if (typed.trim() === name) remove();
            else
              setError(
                new UsageError(
                  'The name typed does not match: nothing was deleted',
                  'Type the name exactly, or esc.',
                ),
              );
          }}
        />
      )}
      {error ? <ErrorView error={error} /> : null}
    </Frame>
  );
}

/** The key deep verifications use for encrypted backups, for this visit of the archive manager. */
function KeysView(props: { keys: KeyEntry; onBack: () => void; onSet: (k: KeyEntry) => void }): ReactNode {
  return (
    <Frame
      title="archive manager: key for encrypted backups"
      legend="↑/↓ field · type · enter set · esc back"
    >
      <Text>A deep verify decrypts: give the key file or the passphrase of encrypted backups.</Text>
      <Form
        fields={keyFields(props.keys, false)}
        onCancel={props.onBack}
        onSubmit={(v) => props.onSet(keyEntryOf(v))}
      />
    </Frame>
  );
}
