import { describe, expect, it } from 'vitest';
import { runCli } from '../harness/cli.js';

/** Sub-command names listed under "Commands:" in a help text (entries start at two spaces). */
function subcommands(text: string): string[] {
  const at = text.indexOf('\nCommands:\n');
  if (at < 0) return [];
  return (
    text
      .slice(at + '\nCommands:\n'.length)
      .split('\n')
      // An alias is listed as "tui|interactive": the command is walked once, by its name.
      .map((line) => /^ {2}(\S+)/.exec(line)?.[1]?.split('|')[0])
      .filter((name): name is string => name !== undefined && name !== 'help')
  );
}

describe('--help', () => {
  it('answers for every command the help lists, wal push and fetch (the lean entry) included', async () => {
    const seen: string[] = [];
    const queue: string[][] = [[]];
    for (let words = queue.shift(); words !== undefined; words = queue.shift()) {
      const r = await runCli([...words, '--help']);
      const title = ['dbbackup', ...words].join(' ');
      expect(r.code, `${title} --help: ${r.stderr}`).toBe(0);
      // "Usage: dbbackup tui|interactive [options]": the alias after the name is not part of the title.
      expect(r.stdout.replace(/^(Usage: [^|\n]*)\|[\w-]+ /m, '$1 '), title).toContain(`Usage: ${title} `);
      seen.push(title);
      for (const name of subcommands(r.stdout)) queue.push([...words, name]);
    }
    expect(seen).toEqual(
      expect.arrayContaining(['dbbackup wal push', 'dbbackup wal fetch', 'dbbackup backup single']),
    );
    const push = await runCli(['wal', 'push', '-h']);
    expect(push.stdout).toContain('--archive <dir|uri>');
  });
});
