import { describe, expect, it } from 'vitest';
import { parseInteger, parseOptionalInteger } from '../../src/cli/numbers.js';
import { UsageError } from '../../src/errors.js';

describe('parseInteger', () => {
  const range = { min: 0, max: 100 };
  it('accepts plain decimal digits within the range', () => {
    expect(parseInteger('--keep-last', '0', range)).toBe(0);
    expect(parseInteger('--keep-last', '007', range)).toBe(7);
    expect(parseInteger('--keep-last', '100', range)).toBe(100);
  });
  it.each([
    '',
    ' ',
    '0x5',
    '0b11',
    '0o7',
    '+3',
    '-1',
    '1e1',
    '1.0',
    '3 ',
    ' 3',
    'three',
    'Infinity',
    'NaN',
    '101',
  ])('refuses %j with a usage error naming the option', (value) => {
    let caught: unknown;
    try {
      parseInteger('--keep-last', value, range);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(UsageError);
    const err = caught as UsageError;
    expect(err.exitCode).toBe(2);
    expect(err.message).toContain('--keep-last');
    expect(err.message).toContain(value === '' ? 'empty' : value);
    expect(err.hint).toMatch(/0 to 100/);
  });
  it('refuses numbers beyond the safe-integer range', () => {
    expect(() =>
      parseInteger('--n', '99999999999999999999', { min: 0, max: Number.MAX_SAFE_INTEGER }),
    ).toThrow(UsageError);
  });
  it('leaves an absent optional value absent', () => {
    expect(parseOptionalInteger('--n', undefined, range)).toBeUndefined();
    expect(parseOptionalInteger('--n', '5', range)).toBe(5);
  });
});
