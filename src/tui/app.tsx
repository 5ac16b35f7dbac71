import { Box, Text, useInput } from 'ink';
import { Component, useCallback, useEffect, useMemo, useRef, useState, type ReactNode } from 'react';
import { ArchiveScreen } from './screens/archive.js';
import { BackupScreen } from './screens/backup.js';
import { ClusterBackupScreen } from './screens/cluster.js';
import { EngineScreen, MenuScreen } from './screens/menu.js';
import { PitrScreen } from './screens/pitr.js';
import { ClusterRestoreScreen } from './screens/restore-cluster.js';
import { HistoryScreen } from './screens/history.js';
import { RestoreScreen } from './screens/restore.js';
import { SettingsScreen } from './screens/settings.js';
import { StatusScreen } from './screens/status.js';
import type { TuiServices } from './services.js';
import { AppContext, ErrorView, useApp, type Nav, type Route } from './ui.js';

interface Running {
  controller: AbortController;
  done: Promise<unknown>;
}

/**
 * A screen that fails while drawing shows the error in place (message and hint, no stack trace)
 * instead of Ink's crash report; esc still goes back, q still quits.
 */
class ScreenBoundary extends Component<{ children: ReactNode }, { error: unknown }> {
  override state: { error: unknown } = { error: undefined };

  static getDerivedStateFromError(error: unknown): { error: unknown } {
    return { error };
  }

  override render(): ReactNode {
    if (this.state.error === undefined) return this.props.children;
    return <Crashed error={this.state.error} />;
  }
}

function Crashed(props: { error: unknown }): ReactNode {
  const { nav } = useApp();
  useInput((_input, key) => {
    if (key.escape) nav.back();
  });
  return (
    <Box flexDirection="column">
      <ErrorView error={props.error} />
      <Text dimColor>esc back · q quit</Text>
    </Box>
  );
}

function screenFor(route: Route): ReactNode {
  switch (route.name) {
    case 'menu':
      return <MenuScreen />;
    case 'backup':
      return <BackupScreen />;
    case 'backup-sample':
      return <BackupScreen sample />;
    case 'backup-cluster':
      return <ClusterBackupScreen />;
    case 'archive':
      return <ArchiveScreen />;
    case 'restore':
      return <RestoreScreen backupKey={route.key} />;
    case 'status':
      return <StatusScreen />;
    case 'history':
      return <HistoryScreen />;
    case 'settings':
      return <SettingsScreen />;
    case 'engine':
      return <EngineScreen />;
    case 'restore-cluster':
      return <ClusterRestoreScreen backupKey={route.key} />;
    case 'restore-pitr':
      return <PitrScreen />;
  }
}

/**
 * The whole interactive UI: a stack of screens over the services. `q` (when no text field has the
 * keyboard) and Ctrl-C quit; while an operation runs they ask first, then stop it and wait for its
 * clean-up (an interrupted backup leaves nothing behind) before `onExit` is called.
 */
export function App(props: {
  services: TuiServices;
  color: boolean;
  /** Quit from outside (SIGTERM, SIGHUP): like a confirmed quit. */
  outside?: AbortSignal;
  /** `stopped`: an operation was running and had to be stopped. */
  onExit: (stopped: boolean) => void;
}): ReactNode {
  const [stack, setStack] = useState<Route[]>([{ name: 'menu' }]);
  const [typing, setTyping] = useState(false);
  const [asking, setAsking] = useState(false);
  const [stopping, setStopping] = useState(false);
  const running = useRef<Running | undefined>(undefined);
  const { onExit } = props;

  const quit = useCallback(async () => {
    const r = running.current;
    if (r) {
      setStopping(true);
      r.controller.abort();
      await r.done.catch(() => undefined);
    }
    onExit(Boolean(r));
  }, [onExit]);
  const quitRef = useRef(quit);
  quitRef.current = quit;
  const { outside } = props;
  useEffect(() => {
    if (!outside) return;
    const stop = (): void => void quitRef.current();
    if (outside.aborted) stop();
    outside.addEventListener('abort', stop, { once: true });
    return () => outside.removeEventListener('abort', stop);
  }, [outside]);

  const nav = useMemo<Nav>(
    () => ({
      push: (route) => {
        setTyping(false);
        setStack((s) => [...s, route]);
      },
      back: () => {
        setTyping(false);
        setStack((s) => (s.length > 1 ? s.slice(0, -1) : s));
      },
      run: <T,>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> => {
        const controller = new AbortController();
        const done = fn(controller.signal);
        const entry = { controller, done };
        running.current = entry;
        const clear = (): void => {
          if (running.current === entry) running.current = undefined;
        };
        done.then(clear, clear);
        return done;
      },
      setTyping,
      quit: () => {
        if (running.current) setAsking(true);
        else void quitRef.current();
      },
    }),
    [],
  );

  useInput((input, key) => {
    if (stopping) return;
    if (asking) {
      if (input === 'y' || input === 'Y') {
        setAsking(false);
        void quit();
      } else if (input === 'n' || input === 'N' || key.escape) setAsking(false);
      return;
    }
    const wantsQuit = (key.ctrl && input === 'c') || (input === 'q' && !typing && !key.ctrl);
    if (!wantsQuit) return;
    if (running.current) setAsking(true);
    else void quit();
  });

  const route = stack[stack.length - 1] ?? { name: 'menu' };
  const c = (name: string): string | undefined => (props.color ? name : undefined);
  return (
    <AppContext.Provider value={{ services: props.services, nav, color: props.color }}>
      <Box flexDirection="column">
        <Box key={stack.length}>
          <ScreenBoundary>{screenFor(route)}</ScreenBoundary>
        </Box>
        {asking ? (
          <Text color={c('yellow')} bold>
            An operation is running. Stop it and quit? (y/n)
          </Text>
        ) : null}
        {stopping ? <Text color={c('yellow')}>Stopping the operation and cleaning up…</Text> : null}
      </Box>
    </AppContext.Provider>
  );
}
