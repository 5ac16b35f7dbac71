import { Text, useInput } from 'ink';
import type { ReactNode } from 'react';
import type { Engine } from '../../catalog/naming.js';
import { Frame, SelectList, useApp, type Route } from '../ui.js';

const MENU: ReadonlyArray<{ key: string; label: string; route: Route | 'quit' }> = [
  { key: 'backup-single', label: 'Backup a database', route: { name: 'backup' } },
  {
    key: 'backup-cluster',
    label: 'Backup the cluster (every database, roles)',
    route: { name: 'backup-cluster' },
  },
  {
    key: 'backup-sample',
    label: 'Backup a sample of a database',
    route: { name: 'backup-sample' },
  },
  { key: 'restore-single', label: 'Restore a database', route: { name: 'restore' } },
  { key: 'restore-cluster', label: 'Restore a cluster backup', route: { name: 'restore-cluster' } },
  { key: 'restore-pitr', label: 'Point-in-time restore', route: { name: 'restore-pitr' } },
  {
    key: 'archive',
    label: 'Archive manager (list, verify, info, delete, prune)',
    route: { name: 'archive' },
  },
  { key: 'status', label: 'Status', route: { name: 'status' } },
  { key: 'settings', label: 'Settings', route: { name: 'settings' } },
  { key: 'history', label: 'History', route: { name: 'history' } },
  { key: 'engine', label: 'Switch engine', route: { name: 'engine' } },
  { key: 'quit', label: 'Quit', route: 'quit' },
];

export function MenuScreen(): ReactNode {
  const { nav, services } = useApp();
  return (
    <Frame title="main menu" legend="↑/↓ move · enter choose · q quit">
      <Text dimColor>Backups go to {services.destination}</Text>
      <SelectList
        height={MENU.length}
        items={MENU.map((m) => ({ key: m.key, label: m.label }))}
        onSelect={(item) => {
          const entry = MENU.find((m) => m.key === item.key);
          if (!entry) return;
          if (entry.route === 'quit') nav.quit();
          else nav.push(entry.route);
        }}
      />
    </Frame>
  );
}

const ENGINES: ReadonlyArray<{ key: Engine; label: string }> = [
  { key: 'postgres', label: 'PostgreSQL' },
  { key: 'mysql', label: 'MySQL' },
  { key: 'mariadb', label: 'MariaDB' },
];

export function EngineScreen(): ReactNode {
  const { nav, services } = useApp();
  useInput((_input, key) => {
    if (key.escape) nav.back();
  });
  return (
    <Frame title="switch engine" legend="↑/↓ move · enter choose · esc back · q quit">
      <Text>Now: {services.engine}. The connection settings stay as configured.</Text>
      <SelectList
        items={ENGINES.map((e) => ({ key: e.key, label: e.label }))}
        onSelect={(item) => {
          services.switchEngine(item.key as Engine);
          nav.back();
        }}
      />
    </Frame>
  );
}
