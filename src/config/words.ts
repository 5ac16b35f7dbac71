import { UsageError } from '../errors.js';

/**
 * A hook command given as one string (`--on-failure '/usr/bin/page "db down"'`) as the program and
 * its arguments. Never a shell: only whitespace separates words, and single or double quotes group
 * them (a backslash escapes the next character outside single quotes). No variables, globs, pipes
 * or redirections — a value starting with `[` is read as a JSON array of strings instead.
 */
export function splitCommand(text: string, what: string): string[] {
  const trimmed = text.trim();
  if (trimmed.startsWith('[')) return jsonArgv(trimmed, what);
  const words: string[] = [];
  let word: string | undefined;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < trimmed.length; i++) {
    const c = trimmed.charAt(i);
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"' && i + 1 < trimmed.length) word += trimmed.charAt(++i);
      else word += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      word ??= '';
    } else if (c === '\\' && i + 1 < trimmed.length) {
      word = (word ?? '') + trimmed.charAt(++i);
    } else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else {
      word = (word ?? '') + c;
    }
  }
  if (quote)
    throw new UsageError(
      `${what}: unbalanced ${quote} in "${text}"`,
      'Close the quote, or give a JSON array: ["/path/prog", "arg"].',
    );
  if (word !== undefined) words.push(word);
  if (!words.length || words[0] === '')
    throw new UsageError(`${what} is empty`, 'Give the program to run, then its arguments.');
  return words;
}

function jsonArgv(text: string, what: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (
    !Array.isArray(parsed) ||
    !parsed.length ||
    !parsed.every((w) => typeof w === 'string') ||
    parsed[0] === ''
  )
    throw new UsageError(
      `${what}: "${text}" is not a JSON array of strings`,
      'Write it as ["/path/prog", "arg", …].',
    );
  return parsed as string[];
}
