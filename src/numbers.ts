import { UsageError } from './errors.js';

/**
 * Every numeric command-line value goes through here. `Number()` would take "" as 0 (a cron line
 * with an unset variable once deleted nine of ten backups through `--keep-last ""`), and "0x5",
 * "0b11", "+3", "1e3" or " 7 " as numbers; only plain decimal digits are accepted.
 */
const DIGITS = /^[0-9]+$/;

export interface IntegerRange {
  min: number;
  max: number;
}

/** A whole number in [min, max] from `value`, or a one-line usage error naming `option`. */
export function parseInteger(option: string, value: string, range: IntegerRange): number {
  const n = DIGITS.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < range.min || n > range.max) {
    const shown = value === '' ? 'an empty value' : `"${value}"`;
    throw new UsageError(
      `Invalid ${option}: ${shown}`,
      `Use a whole number from ${range.min} to ${range.max}, written in decimal digits.`,
    );
  }
  return n;
}

/** `parseInteger` for an option that may be absent. */
export function parseOptionalInteger(
  option: string,
  value: string | undefined,
  range: IntegerRange,
): number | undefined {
  return value === undefined ? undefined : parseInteger(option, value, range);
}

/** Plain decimal notation with an optional fraction: "0.5", "10" — not "1e3", "0x5", "+3", ".5" or "". */
const DECIMAL = /^[0-9]+(?:\.[0-9]+)?$/;

/** The number written in plain decimal notation, or undefined for anything else (callers word the error). */
export function decimalValue(value: string): number | undefined {
  return DECIMAL.test(value) ? Number(value) : undefined;
}
