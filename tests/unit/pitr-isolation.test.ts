import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  isolationSettings,
  settingsAsConf,
  settingsAsServerOptions,
  socketFits,
} from '../../src/pitr/isolation.js';

describe('the settings that keep a restored copy to itself', () => {
  const settings = isolationSettings({ socketDir: "/srv/it's, here", port: 5433, archiveOff: true });

  it('put the socket, TCP, log and archiving where the copy cannot reach production', () => {
    expect(Object.fromEntries(settings)).toEqual({
      unix_socket_directories: `"/srv/it's, here"`,
      listen_addresses: '127.0.0.1',
      port: '5433',
      logging_collector: 'off',
      log_destination: 'stderr',
      synchronous_standby_names: '',
      archive_mode: 'off',
    });
    expect(isolationSettings({ socketDir: '/d', archiveOff: false }).map(([n]) => n)).not.toContain(
      'archive_mode',
    );
  });

  it("reach the server as one argument each through pg_ctl's /bin/sh, quotes and all", () => {
    const text = settingsAsServerOptions(settings);
    // What the shell hands the server: printf shows each argument on its own line.
    const args = execFileSync('/bin/sh', ['-c', `printf '%s\\n' ${text}`], { encoding: 'utf8' })
      .trimEnd()
      .split('\n');
    expect(args).toEqual(settings.flatMap(([n, v]) => ['-c', `${n}=${v}`]));
  });

  it('as postgresql.conf lines, quoted for the file', () => {
    expect(settingsAsConf(settings)[0]).toBe(`unix_socket_directories = '"/srv/it''s, here"'`);
  });

  it('fall back from a data directory whose socket path would be over 107 bytes', () => {
    expect(socketFits('/srv/pg-restore', 65535)).toBe(true);
    // "/xxx…/.s.PGSQL.5433": 107 bytes fit, 108 do not.
    expect(socketFits(`/${'x'.repeat(92)}`, 5433)).toBe(true);
    expect(socketFits(`/${'x'.repeat(93)}`, 5433)).toBe(false);
  });
});
