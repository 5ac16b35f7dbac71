import { afterAll, expect, it } from 'vitest';

// Colours on as on a colour terminal; Ink's colour support is decided when it is loaded, so the
// app is imported only after this.
process.env.FORCE_COLOR = '1';
const { FakeServices, start } = await import('./tui-fake.js');

const ESC = String.fromCharCode(27);
const opened: Array<{ ui: { unmount: () => void } }> = [];
afterAll(() => opened.forEach((t) => t.ui.unmount()));

it('uses colours on a colour terminal, and none at all under NO_COLOR / --no-color', async () => {
  const coloured = start(new FakeServices(), true);
  const plain = start(new FakeServices(), false);
  opened.push(coloured, plain);
  expect(await coloured.until('Quit')).toContain(`${ESC}[36m`);
  const f = await plain.until('Quit');
  expect(f).not.toMatch(new RegExp(`${ESC}\\[(3|4|9)\\dm`));
  // The selection is still visible without colour.
  expect(f).toContain('› Backup a database');
});
