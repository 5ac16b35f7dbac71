import { Spinner, TextInput } from '@inkjs/ui';
import { Text, useInput } from 'ink';
import { useCallback, useEffect, useState, type ReactNode } from 'react';
import type { CatalogEntry } from '../../verify/listing.js';
import { formatBytes } from '../../pipeline/progress.js';
import type { VerifyResult } from '../../verify/verify.js';
import { ErrorView, fit, Frame, SelectList, useApp, useColor } from '../ui.js';

type Mode =
  | { at: 'list' }
  | { at: 'verifying'; done: number; total: number; current: string }
  | { at: 'info'; key: string; lines?: string[]; error?: unknown }
  | { at: 'delete'; key: string; error?: unknown }
  | { at: 'deleting'; key: string };

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

/**
 * The archive manager: every backup in the configured location with its state; verify one (v),
 * deep (d) or all (a), info (i), restore (r), delete (x, after typing its name), refresh (f).
 */
export function ArchiveScreen(): ReactNode {
  const { services, nav } = useApp();
  const c = useColor();
  const [entries, setEntries] = useState<CatalogEntry[] | undefined>();
  const [error, setError] = useState<unknown>();
  const [verified, setVerified] = useState(new Map<string, VerifyResult>());
  const [selected, setSelected] = useState<string | undefined>();
  const [mode, setMode] = useState<Mode>({ at: 'list' });
  const [message, setMessage] = useState<string | undefined>();

  const refresh = useCallback(() => {
    setEntries(undefined);
    setError(undefined);
    services.listArchive().then((list) => {
      setEntries(list);
      setSelected((s) => (s && list.some((e) => e.key === s) ? s : list[0]?.key));
    }, setError);
  }, [services]);
  useEffect(refresh, [refresh]);

  const verify = async (keys: string[], deep: boolean): Promise<void> => {
    setMessage(undefined);
    let bad = 0;
    for (const [i, key] of keys.entries()) {
      setMode({ at: 'verifying', done: i, total: keys.length, current: key });
      try {
        const r = await services.verify(key, deep);
        if (r.state !== 'valid') bad++;
        setVerified((m) => new Map(m).set(key, r));
      } catch (err) {
        setError(err);
        break;
      }
    }
    setMode({ at: 'list' });
    setMessage(
      `${keys.length} verified${deep ? ' (deep)' : ''}: ${keys.length - bad} valid, ${bad} not valid`,
    );
  };

  useInput(
    (input, key) => {
      if (key.escape) return nav.back();
      if (!entries) return;
      const target = selected;
      if (input === 'f') refresh();
      else if (input === 'a' && entries.length)
        void verify(
          entries.map((e) => e.key),
          false,
        );
      else if (!target) return;
      else if (input === 'v' || input === 'd') void verify([target], input === 'd');
      else if (input === 'i') {
        setMode({ at: 'info', key: target });
        services.info(target).then(
          (lines) => setMode({ at: 'info', key: target, lines }),
          (e: unknown) => setMode({ at: 'info', key: target, error: e }),
        );
      } else if (input === 'r') nav.push({ name: 'restore', key: target });
      else if (input === 'x') {
        nav.setTyping(true);
        setMode({ at: 'delete', key: target });
      }
    },
    { isActive: mode.at === 'list' },
  );
  useInput(
    (_input, key) => {
      if (key.escape || key.return) setMode({ at: 'list' });
    },
    { isActive: mode.at === 'info' },
  );
  useInput(
    (_input, key) => {
      if (key.escape) {
        nav.setTyping(false);
        setMode({ at: 'list' });
      }
    },
    { isActive: mode.at === 'delete' },
  );

  const remove = (key: string): void => {
    nav.setTyping(false);
    setMode({ at: 'deleting', key });
    services.deleteBackup(key).then(
      (files) => {
        setMessage(`Deleted ${nameOf(key)}: ${files.length} file${files.length === 1 ? '' : 's'} removed`);
        setMode({ at: 'list' });
        refresh();
      },
      (e: unknown) => setMode({ at: 'delete', key, error: e }),
    );
  };

  if (mode.at === 'info')
    return (
      <Frame title={`info: ${nameOf(mode.key)}`} legend="enter/esc back to the list · q quit">
        {mode.error ? <ErrorView error={mode.error} /> : null}
        {!mode.lines && !mode.error ? <Spinner label="Reading the metadata…" /> : null}
        {mode.lines?.map((l) => (
          <Text key={l}>{l}</Text>
        ))}
      </Frame>
    );
  if (mode.at === 'delete' || mode.at === 'deleting')
    return (
      <Frame title={`delete ${nameOf(mode.key)}`} legend="type the name and enter to delete · esc cancel">
        <Text>
          This deletes the backup{mode.key.endsWith('/') ? ' (the whole cluster backup, every member)' : ''}{' '}
          and its .meta.json and .sha256. It cannot be undone.
        </Text>
        <Text>
          Type <Text bold>{nameOf(mode.key)}</Text> to confirm:
        </Text>
        {mode.at === 'delete' ? (
          <TextInput
            placeholder={nameOf(mode.key)}
            onSubmit={(typed) => {
              if (typed.trim() === nameOf(mode.key)) remove(mode.key);
              else
                setMode({
                  at: 'delete',
                  key: mode.key,
                  error: new Error('the name typed does not match; nothing was deleted'),
                });
            }}
          />
        ) : (
          <Spinner label="Deleting…" />
        )}
        {mode.at === 'delete' && mode.error ? <ErrorView error={mode.error} /> : null}
      </Frame>
    );

  const current = entries?.find((e) => e.key === selected);
  const currentState = current ? stateOf(current, verified) : undefined;
  const legend = 'v verify · d deep · a all · i info · r restore · x delete · f refresh · esc · q';
  return (
    <Frame title="archive manager" legend={legend}>
      <Text dimColor>{services.destination}</Text>
      <Text bold>
        {fit('NAME', 38)} {fit('CREATED (UTC)', 16)} {fit('SIZE', 10)} STATE
      </Text>
      {error ? <ErrorView error={error} /> : null}
      {!entries && !error ? <Spinner label="Listing the backups…" /> : null}
      {entries ? (
        <SelectList
          height={10}
          active={mode.at === 'list'}
          items={entries.map((e) => {
            const s = stateOf(e, verified);
            return { key: e.key, label: entryLine(e, s.state) };
          })}
          onHighlight={(item) => setSelected(item?.key)}
          onSelect={(item) => {
            setSelected(item.key);
            nav.push({ name: 'restore', key: item.key });
          }}
        />
      ) : null}
      {current && currentState && currentState.state !== 'valid' ? (
        <Text color={c('yellow')}>{fit(currentState.detail, 78)}</Text>
      ) : null}
      {mode.at === 'verifying' ? (
        <Spinner label={`verifying ${mode.done + 1} of ${mode.total}: ${nameOf(mode.current)}`} />
      ) : null}
      {message ? <Text color={c('green')}>{message}</Text> : null}
    </Frame>
  );
}
