import { Spinner, TextInput } from '@inkjs/ui';
import { Box, Text, useInput } from 'ink';
import { useCallback, useEffect, useState, type ReactNode } from 'react';
import type { SettingRow, SettingsView } from '../services.js';
import { ErrorView, fit, Frame, SelectList, useApp, useColor } from '../ui.js';

/**
 * Every setting with its value and where it comes from; enter edits one in place and saves it to the
 * configuration file (path shown). Secrets are never displayed, not even while typed.
 */
export function SettingsScreen(): ReactNode {
  const { services, nav } = useApp();
  const c = useColor();
  const [view, setView] = useState<SettingsView | undefined>();
  const [error, setError] = useState<unknown>();
  const [editing, setEditing] = useState<SettingRow | undefined>();
  const [selected, setSelected] = useState<SettingRow | undefined>();
  const [message, setMessage] = useState<string | undefined>();
  const load = useCallback(() => {
    services.settings().then((v) => {
      setView(v);
      setSelected((s) => s ?? v.rows[0]);
    }, setError);
  }, [services]);
  useEffect(load, [load]);
  useInput(
    (_input, key) => {
      if (key.escape) nav.back();
    },
    { isActive: !editing },
  );
  useInput(
    (_input, key) => {
      if (key.escape) {
        nav.setTyping(false);
        setEditing(undefined);
      }
    },
    { isActive: Boolean(editing) },
  );
  const save = (row: SettingRow, text: string): void => {
    nav.setTyping(false);
    setEditing(undefined);
    setError(undefined);
    services.saveSetting(row.key, text === '' ? undefined : text).then(
      () => {
        setMessage(`${row.key} ${text === '' ? 'removed from' : 'saved to'} ${view?.file ?? 'the file'}`);
        load();
      },
      (e: unknown) => setError(e),
    );
  };
  return (
    <Frame
      title="settings"
      legend={
        editing
          ? 'type the value · enter save (empty: remove) · esc cancel'
          : '↑/↓ move · enter edit · esc back · q quit'
      }
    >
      {!view && !error ? <Spinner label="Reading the configuration…" /> : null}
      {view ? (
        <Box flexDirection="column">
          <Text dimColor>
            File: {view.file}
            {view.profile ? ` (profile ${view.profile})` : ''}
          </Text>
          <Text dimColor>Flags given on this run's command line still win over these.</Text>
          <SelectList
            height={11}
            active={!editing}
            items={view.rows.map((r) => ({
              key: r.key,
              label: `${fit(r.key, 28)} ${fit(r.shown, 46).trimEnd()}`,
            }))}
            onHighlight={(item) => setSelected(view.rows.find((r) => r.key === item?.key))}
            onSelect={(item) => {
              const row = view.rows.find((r) => r.key === item.key);
              if (!row) return;
              setMessage(undefined);
              nav.setTyping(true);
              setEditing(row);
            }}
          />
          {selected ? (
            <Text dimColor>{fit(`${selected.description} [from ${selected.source}]`, 78).trimEnd()}</Text>
          ) : null}
        </Box>
      ) : null}
      {editing ? (
        <Box flexDirection="column">
          <Text>
            {editing.key}
            {editing.choices ? ` (${editing.choices.join(', ')})` : ''}
            {editing.secret ? ' — secret: not shown while typed' : ''}:
          </Text>
          {editing.secret ? (
            <SecretInput onSubmit={(v) => save(editing, v)} />
          ) : (
            <TextInput
              defaultValue={editing.shown.startsWith('(') ? '' : editing.shown}
              onSubmit={(v) => save(editing, v)}
            />
          )}
        </Box>
      ) : null}
      {error ? <ErrorView error={error} /> : null}
      {message ? <Text color={c('green')}>{message}</Text> : null}
    </Frame>
  );
}

/** A secret typed without echo: only the count of characters shows. */
function SecretInput(props: { onSubmit: (value: string) => void }): ReactNode {
  const [value, setValue] = useState('');
  useInput((input, key) => {
    if (key.return) props.onSubmit(value);
    else if (key.backspace || key.delete) setValue((v) => v.slice(0, -1));
    else if (input && !key.ctrl && !key.meta && !key.escape) setValue((v) => v + input);
  });
  return <Text>{value ? `${value.length} characters` : '(empty)'}</Text>;
}
