import { afterEach, describe, expect, it } from 'vitest';
import { FakeServices, KEY, entry, start } from './tui-fake.js';

/** Prune by policy in the archive manager: keys in, frames out, against the services double. */

let cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups) c();
  cleanups = [];
});

function app() {
  const services = new FakeServices();
  services.archive = [
    entry('shop_20261203_050000.dump.zst', 'unverified'),
    entry('shop_20261202_050000.dump.zst', 'unverified'),
    entry('shop_20261201_050000.dump.zst', 'unverified'),
  ];
  const t = start(services);
  cleanups.push(() => t.ui.unmount());
  return { ...t, services };
}

/** Main menu → archive manager → p, then the configured keep-last 1 raised to 2 → the preview. */
async function toPreview(t: ReturnType<typeof app>): Promise<string> {
  await t.until('Quit');
  await t.press(...Array<string>(6).fill(KEY.down), KEY.enter);
  await t.until('shop_20261201_050000');
  await t.press('p');
  await t.until('prune by policy: rules');
  await t.until('Keep last');
  await t.press(KEY.backspace);
  await t.type('2');
  await t.press(KEY.enter);
  return t.until('Nothing deleted yet');
}

describe('archive manager: prune by policy', () => {
  it('starts from the configured rules and previews what goes and what stays, and why', async () => {
    const t = app();
    const preview = await toPreview(t);
    expect(t.services.calls).toContain('retentionSettings');
    expect(t.services.calls).toContain('previewPrune last=2');
    expect(preview).toMatch(/keep\s+\S+ \S+ shop_20261203_050000\.dump\.zst \(last 1\)/);
    expect(preview).toMatch(/keep\s+\S+ \S+ shop_20261202_050000\.dump\.zst \(last 2\)/);
    expect(preview).toMatch(/DELETE \S+ \S+ shop_20261201_050000\.dump\.zst \(no rule keeps it\)/);
    expect(preview).toContain('2 kept, 1 would be deleted');
  });

  it('deletes nothing without the typed confirmation; esc leaves everything', async () => {
    const t = app();
    await toPreview(t);
    await t.press(KEY.enter);
    await t.until('Type prune to confirm');
    await t.type('prun');
    await t.press(KEY.enter);
    await t.until('nothing was deleted');
    await t.press(KEY.esc);
    await t.until('Nothing deleted yet');
    await t.press(KEY.esc);
    await t.until('prune by policy: rules');
    await t.press(KEY.esc);
    await t.until('p prune');
    expect(t.services.calls).not.toContain('runPrune');
    expect(t.services.archive).toHaveLength(3);
  });

  it('after typing prune, removes what the preview named and keeps the rest', async () => {
    const t = app();
    await toPreview(t);
    await t.press(KEY.enter);
    await t.until('Type prune to confirm');
    await t.type('prune');
    await t.press(KEY.enter);
    const done = await t.until('prune by policy: done');
    expect(done).toContain('Pruned: 2 kept, 1 deleted');
    expect(done).toMatch(/deleted \S+ \S+ shop_20261201_050000\.dump\.zst/);
    expect(t.services.archive.map((e) => e.key)).toEqual([
      'shop_20261203_050000.dump.zst',
      'shop_20261202_050000.dump.zst',
    ]);
    await t.press(KEY.enter);
    const list = await t.until('p prune');
    expect(list).toContain('Pruned: 2 kept, 1 deleted');
    expect(list).not.toContain('shop_20261201_050000');
  });

  it('says truthfully what was removed and what failed', async () => {
    const t = app();
    t.services.pruneFailure = 'permission denied';
    t.services.retention = { ...t.services.retention, keepLast: '1' };
    await t.until('Quit');
    await t.press(...Array<string>(6).fill(KEY.down), KEY.enter);
    await t.until('shop_20261201_050000');
    await t.press('p');
    await t.until('Keep last');
    await t.press(KEY.enter);
    await t.until('1 kept, 2 would be deleted');
    await t.press(KEY.enter);
    await t.until('Type prune to confirm');
    await t.type('prune');
    await t.press(KEY.enter);
    const done = await t.until('prune by policy: done');
    expect(done).toContain('Pruned: 1 kept, 1 deleted, 1 not deleted');
    expect(done).toMatch(/deleted \S+ \S+ shop_20261202_050000\.dump\.zst/);
    expect(done).toMatch(/FAILED \S+ \S+ shop_20261201_050000\.dump\.zst/);
    expect(done).toContain('shop_20261201_050000.dump.zst: permission denied');
  });
});
