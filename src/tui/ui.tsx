import { Box, Text, useInput, useStdout } from 'ink';
import { createContext, useContext, useEffect, useRef, useState, type ReactNode } from 'react';
import { DbBackupError, errorMessage } from '../errors.js';
import type { KeyEntry } from './keys.js';
import type { TuiServices } from './services.js';

/** A screen the app can show; the stack of them is the way back (esc). */
export type Route =
  | { name: 'menu' }
  | { name: 'backup' }
  | { name: 'backup-cluster' }
  | { name: 'backup-sample' }
  | { name: 'archive' }
  | { name: 'restore'; key?: string }
  | { name: 'restore-cluster'; key?: string }
  | { name: 'restore-pitr' }
  | { name: 'status' }
  | { name: 'history' }
  | { name: 'settings' }
  | { name: 'engine' };

export interface Nav {
  push(route: Route): void;
  back(): void;
  /** Quit: at once when idle, after asking while an operation runs. */
  quit(): void;
  /**
   * Runs an operation that a quit must stop: the app aborts its signal, waits for it to clean up,
   * then exits. Only one runs at a time.
   */
  run<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T>;
  /** While a text field has the keyboard, `q` is a letter, not quit. */
  setTyping(typing: boolean): void;
}

export interface AppContextValue {
  services: TuiServices;
  nav: Nav;
  color: boolean;
}

export const AppContext = createContext<AppContextValue | undefined>(undefined);

export function useApp(): AppContextValue {
  const value = useContext(AppContext);
  if (!value) throw new Error('useApp outside the app');
  return value;
}

/** While the calling component shows, letters are typed (q included): only Ctrl-C quits. */
export function useTyping(): void {
  const { nav } = useApp();
  useEffect(() => {
    nav.setTyping(true);
    return () => nav.setTyping(false);
  }, [nav]);
}

/** A colour, or none under NO_COLOR / --no-color (the text says the same without it). */
export function useColor(): (color: string) => string | undefined {
  const { color } = useApp();
  return (c) => (color ? c : undefined);
}

/**
 * The terminal's size, redrawn when it changes (Ink itself redraws on `resize`, but only what reads
 * the size lays out again). Screens are laid out for 80 columns: a wider terminal keeps 80, a
 * narrower one gets its own width (long lines wrap); lists and plans take the rows there are.
 */
export function useTerminalSize(): { columns: number; rows: number } {
  const { stdout } = useStdout();
  const read = (): { columns: number; rows: number } => ({
    columns: Math.max(40, Math.min(80, stdout.columns || 80)),
    rows: Math.max(12, stdout.rows || 24),
  });
  const [size, setSize] = useState(read);
  useEffect(() => {
    const onResize = (): void => setSize(read());
    stdout.on('resize', onResize);
    return () => {
      stdout.off('resize', onResize);
    };
  }, [stdout]);
  return size;
}

/** A screen: its title, its body, and the one-line key legend at the bottom. */
export function Frame(props: { title: string; legend: string; children?: ReactNode }): ReactNode {
  const { services } = useApp();
  const c = useColor();
  const { columns } = useTerminalSize();
  return (
    <Box flexDirection="column" width={columns}>
      {/* One line whatever the width: the title gives way (cut with …), the server stays whole. */}
      <Box justifyContent="space-between">
        <Box flexShrink={1} marginRight={1}>
          <Text bold color={c('cyan')} wrap="truncate-end">
            dbbackup · {props.title}
          </Text>
        </Box>
        <Box flexShrink={0}>
          <Text dimColor>
            {services.engine} @ {services.server}
          </Text>
        </Box>
      </Box>
      <Box flexDirection="column" marginTop={1} marginBottom={1}>
        {props.children}
      </Box>
      <Text dimColor>{props.legend}</Text>
    </Box>
  );
}

/** An error in place: the message and its hint, never a stack trace. */
export function ErrorView(props: { error: unknown }): ReactNode {
  const c = useColor();
  const known = props.error instanceof DbBackupError ? props.error : undefined;
  const hint = known
    ? known.hint
    : 'this looks like a bug in dbbackup; run the command with --debug and report it.';
  return (
    <Box flexDirection="column">
      <Text color={c('red')}>error: {known ? known.message : errorMessage(props.error)}</Text>
      {known?.details.map((d) => (
        <Text key={d}> {d}</Text>
      ))}
      {hint ? <Text color={c('yellow')}>hint: {hint}</Text> : null}
    </Box>
  );
}

export interface ListItem {
  key: string;
  label: string;
  /** Searched by the filter as well as the label. */
  detail?: string;
}

/**
 * A list to move through with ↑/↓ (PgUp/PgDn, Home/End) and pick with enter; with `filter`,
 * typing narrows it (backspace widens it again). Shows `height` rows around the selection.
 */
export function SelectList(props: {
  items: ListItem[];
  onSelect: (item: ListItem) => void;
  onHighlight?: (item: ListItem | undefined) => void;
  filter?: boolean;
  height?: number;
  active?: boolean;
  /** Keys the screen handles itself (never typed into the filter). */
  reserved?: string;
}): ReactNode {
  const c = useColor();
  // Keys can arrive faster than renders: the current query and index live in refs, so each key
  // works on what the previous one left, not on the last rendered frame.
  const [, setVersion] = useState(0);
  const state = useRef({ query: '', index: 0 });
  const height = props.height ?? 12;
  const matching = (query: string): ListItem[] => {
    const q = query.toLowerCase();
    return q
      ? props.items.filter((i) => `${i.label} ${i.detail ?? ''}`.toLowerCase().includes(q))
      : props.items;
  };
  const update = (query: string, index: number): void => {
    const list = matching(query);
    const next = Math.max(0, Math.min(list.length - 1, index));
    state.current = { query, index: next };
    setVersion((v) => v + 1);
    props.onHighlight?.(list[next]);
  };
  useInput(
    (input, key) => {
      const { query, index } = state.current;
      if (key.upArrow) update(query, index - 1);
      else if (key.downArrow) update(query, index + 1);
      else if (key.pageUp) update(query, index - height);
      else if (key.pageDown) update(query, index + height);
      else if (key.home) update(query, 0);
      else if (key.end) update(query, Number.MAX_SAFE_INTEGER);
      else if (key.return) {
        const item = matching(query)[index];
        if (item) props.onSelect(item);
      } else if (props.filter && (key.backspace || key.delete)) update(query.slice(0, -1), 0);
      else if (
        props.filter &&
        input &&
        !key.ctrl &&
        !key.meta &&
        !key.escape &&
        !key.tab &&
        !(props.reserved ?? '').includes(input)
      )
        update(query + input, 0);
    },
    { isActive: props.active !== false },
  );
  const { query } = state.current;
  const q = query;
  const shown = matching(query);
  const at = Math.min(state.current.index, Math.max(0, shown.length - 1));
  const first = Math.max(0, Math.min(at - Math.floor(height / 2), shown.length - height));
  const visible = shown.slice(first, first + height);
  return (
    <Box flexDirection="column">
      {props.filter ? (
        <Text>
          filter: <Text color={c('green')}>{query}</Text>
          <Text dimColor>{query ? '' : '(type to filter)'}</Text>
        </Text>
      ) : null}
      {visible.map((item, i) => {
        const selected = first + i === at;
        return (
          <Text key={item.key} color={selected ? c('cyan') : undefined} inverse={selected && !c('cyan')}>
            {selected ? '› ' : '  '}
            {item.label}
          </Text>
        );
      })}
      {shown.length === 0 ? <Text dimColor>{q ? 'nothing matches the filter' : '(empty)'}</Text> : null}
      {shown.length > height ? (
        <Text dimColor>
          {at + 1} of {shown.length}
        </Text>
      ) : null}
    </Box>
  );
}

/** Cuts text to `width` columns (a long name must not wrap the screen out of 80×24). */
export function fit(text: string, width: number): string {
  return text.length <= width ? text.padEnd(width) : `${text.slice(0, Math.max(0, width - 1))}…`;
}

export interface FormField {
  name: string;
  label: string;
  value: string;
  /** A choice among these (←/→), instead of free text. */
  choices?: readonly string[];
  help?: string;
  /** Typed but never shown: one • per character (a passphrase). */
  secret?: boolean;
}

/** The fields of a key for encrypted backups: a key file's path, or a passphrase (masked). */
export function keyFields(k: KeyEntry | undefined, encrypt: boolean, configured?: string): FormField[] {
  return [
    {
      name: 'keyFile',
      label: encrypt ? 'Encryption key file' : 'Key file',
      // Until the user typed one: the configured key file (encryption.key_file), as the CLI takes it.
      value: k?.file ?? configured ?? '',
      help: encrypt
        ? 'a 32-byte key file (dbbackup keygen --symmetric); empty: none'
        : 'for an encrypted backup (DBBACKUP_ENCRYPTION_KEY is also tried)',
    },
    {
      name: 'passphrase',
      label: encrypt ? 'Or a passphrase' : 'Or its passphrase',
      value: k?.passphrase ?? '',
      secret: true,
      help: encrypt ? 'typed, never shown; empty: none' : 'typed, never shown',
    },
  ];
}

export function keyEntryOf(v: Record<string, string>): KeyEntry {
  return { file: (v.keyFile ?? '').trim(), passphrase: v.passphrase ?? '' };
}

/** What protects a backup, in words (a passphrase is never shown). */
export function describeKeys(k: KeyEntry | undefined): string {
  const parts = [
    ...(k?.file ? [`key file ${k.file}`] : []),
    ...(k?.passphrase ? ['a passphrase (typed, not shown)'] : []),
  ];
  return parts.length ? parts.join(' and ') : 'none';
}

/**
 * Fields edited in place: ↑/↓ (or tab) between them, ←/→ through a field's choices, typing and
 * backspace in a text field; enter submits, esc cancels.
 */
export function Form(props: {
  fields: FormField[];
  onSubmit: (values: Record<string, string>) => void;
  onCancel: () => void;
}): ReactNode {
  const c = useColor();
  useTyping();
  const [, setVersion] = useState(0);
  // As in SelectList: every key sees what the key before it left.
  const state = useRef({
    values: Object.fromEntries(props.fields.map((f) => [f.name, f.value])) as Record<string, string>,
    at: 0,
  });
  useInput((input, key) => {
    const { values, at } = state.current;
    const field = props.fields[at];
    if (!field) return;
    const value = values[field.name] ?? '';
    const change = (next: Partial<typeof state.current>): void => {
      state.current = { ...state.current, ...next };
      setVersion((v) => v + 1);
    };
    const set = (v: string): void => change({ values: { ...values, [field.name]: v } });
    if (key.escape) props.onCancel();
    else if (key.return) props.onSubmit(values);
    else if (key.upArrow || (key.tab && key.shift)) change({ at: Math.max(0, at - 1) });
    else if (key.downArrow || key.tab) change({ at: Math.min(props.fields.length - 1, at + 1) });
    else if (field.choices && (key.leftArrow || key.rightArrow || input === ' ')) {
      const i = field.choices.indexOf(value);
      const n = field.choices.length;
      set(field.choices[(i + (key.leftArrow ? n - 1 : 1)) % n] ?? value);
    } else if (!field.choices && (key.backspace || key.delete)) set(value.slice(0, -1));
    else if (!field.choices && input && !key.ctrl && !key.meta) set(value + input);
  });
  const { values, at } = state.current;
  const width = Math.max(...props.fields.map((f) => f.label.length));
  return (
    <Box flexDirection="column">
      {props.fields.map((f, i) => {
        const focused = i === at;
        const value = values[f.name] ?? '';
        return (
          <Box key={f.name} flexDirection="column">
            <Text>
              <Text color={focused ? c('cyan') : undefined}>
                {focused ? '› ' : '  '}
                {f.label.padEnd(width)}{' '}
              </Text>
              {f.choices ? (
                <Text bold={focused}>{focused ? `‹ ${value} ›` : value}</Text>
              ) : (
                <Text inverse={focused && !value}>
                  {(f.secret ? '•'.repeat(value.length) : value) || (focused ? ' ' : '')}
                </Text>
              )}
              {focused && !f.choices && value ? <Text inverse> </Text> : null}
            </Text>
            {focused && f.help ? <Text dimColor> {f.help}</Text> : null}
          </Box>
        );
      })}
    </Box>
  );
}

/** `Name:` padded to a column, as text (JSX would collapse the spaces). */
export function label(name: string, width = 13): string {
  return `${name}:`.padEnd(width);
}
