// The parsers moved to src/numbers.ts so the interactive UI (a lower layer) parses with the same rules.
export * from '../numbers.js';
