import { execFileSync } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { repoRoot } from '../harness/cli.js';
import { tempDir } from './util.js';

/** Variables of the caller that would point the UI elsewhere than the test says. */
const CLEARED = [
  'PGHOST',
  'PGPORT',
  'PGUSER',
  'PGPASSWORD',
  'PGDATABASE',
  'MYSQL_PWD',
  'MYSQL_HOST',
  'DBBACKUP_BACKUP_DIR',
  'DBBACKUP_DB_TYPE',
  'DBBACKUP_CONFIG',
  'DBBACKUP_PROFILE',
];

const quote = (s: string): string => `'${s.replaceAll("'", "'\\''")}'`;

/**
 * The real binary in a real pseudo-terminal: a tmux session of 80×24 on its own tmux server, keys
 * sent with send-keys, the screen read with capture-pane. Tests wait for text, never for time.
 */
export class Terminal {
  private constructor(
    private readonly socket: string,
    private readonly exitFile: string,
  ) {}

  static async open(args: string[], env: Record<string, string> = {}): Promise<Terminal> {
    const dir = await tempDir('dbb-tui-term-');
    const exitFile = path.join(dir, 'exit');
    const script = path.join(dir, 'run.sh');
    const lines = [
      '#!/bin/sh',
      ...CLEARED.map((v) => `unset ${v}`),
      ...Object.entries(env).map(([k, v]) => `export ${k}=${quote(v)}`),
      `cd ${quote(repoRoot)}`,
      `${quote(process.execPath)} bin/dbbackup.js ${args.map(quote).join(' ')} 2>${quote(path.join(dir, 'stderr'))}`,
      `echo $? > ${quote(exitFile)}`,
      // The pane stays, so its last screen can still be read after the program ended.
      'sleep 600',
    ];
    await writeFile(script, `${lines.join('\n')}\n`, { mode: 0o700 });
    // The tmux server's socket lives in the test's directory, removed with it.
    const socket = path.join(dir, 'tmux.sock');
    execFileSync(
      'tmux',
      ['-S', socket, '-f', '/dev/null', 'new-session', '-d', '-x', '80', '-y', '24', script],
      {
        env: { ...process.env, TERM: 'xterm-256color' },
      },
    );
    return new Terminal(socket, exitFile);
  }

  private tmux(...args: string[]): string {
    return execFileSync('tmux', ['-S', this.socket, ...args], { encoding: 'utf8' });
  }

  screen(): string {
    return this.tmux('capture-pane', '-p');
  }

  /** Waits until the screen shows `text` (generously: a dump on a busy machine takes its time). */
  async until(text: string | RegExp, timeoutMs = 90_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = this.screen();
      if (typeof text === 'string' ? s.includes(text) : text.test(s)) {
        // Key handlers of a screen just drawn are subscribed right after it is: let them be.
        await new Promise((r) => setTimeout(r, 150));
        return s;
      }
      if (Date.now() > deadline) throw new Error(`waited for ${String(text)}; the screen shows:\n${s}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** tmux key names: Enter, Escape, Down, Up, Left, Right, BSpace, C-c, or a letter. */
  async keys(...names: string[]): Promise<void> {
    for (const k of names) {
      this.tmux('send-keys', k);
      await new Promise((r) => setTimeout(r, 120));
    }
  }

  async type(text: string): Promise<void> {
    this.tmux('send-keys', '-l', text);
    await new Promise((r) => setTimeout(r, 150));
  }

  /** The program's exit code once it ended. */
  async exitCode(timeoutMs = 60_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const text = await readFile(this.exitFile, 'utf8').catch(() => '');
      if (text.trim()) return Number(text.trim());
      if (Date.now() > deadline)
        throw new Error(`the program did not exit; the screen shows:\n${this.screen()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async stderr(): Promise<string> {
    return readFile(path.join(path.dirname(this.exitFile), 'stderr'), 'utf8').catch(() => '');
  }

  async close(): Promise<void> {
    try {
      this.tmux('kill-server');
    } catch {
      // already gone
    }
    await rm(path.dirname(this.exitFile), { recursive: true, force: true });
  }
}
