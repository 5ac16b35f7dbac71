import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Command } from 'commander';
import { DbBackupError, errorMessage } from '../../../errors.js';
import { maskUri, parseCloudUri } from '../../../storage/cloud-uri.js';
import type { Storage } from '../../../storage/storage.js';
import { openStore } from '../../../storage/uri.js';
import { formatBytes } from '../../../units.js';
import { requireCloud } from '../../cloud-transfer.js';
import { cloudSettings, globals, out } from '../../context.js';

export function addDoctorCommand(cloud: Command): void {
  cloud
    .command('doctor')
    .description('Self-test a cloud location: access, multipart upload, ranged read, delete')
    .argument('<uri>', 'cloud prefix URI')
    .action(async (uri: string, _o: unknown, cmd: Command) => {
      requireCloud(uri);
      const failures = await doctor(uri, await openStore(uri, cloudSettings(globals(cmd))));
      if (failures)
        throw new DbBackupError(`${failures} check${failures > 1 ? 's' : ''} failed for ${uri}`, {
          hint: 'Fix the first failing step; the messages above say why.',
        });
      out.line('All checks passed.');
    });
}

async function doctor(uri: string, store: Storage): Promise<number> {
  let failures = 0;
  const step = async (name: string, fn: () => Promise<string>): Promise<boolean> => {
    try {
      out.line(`ok    ${name}: ${await fn()}`);
      return true;
    } catch (err) {
      failures++;
      out.line(`FAIL  ${name}: ${errorMessage(err)}`);
      return false;
    }
  };
  const key = `.dbbackup-doctor-${randomBytes(4).toString('hex')}`;
  // 20 MiB of data: more than one upload part at the default part size, so multipart is exercised.
  const size = 20 * 1024 * 1024;
  const block = randomBytes(1024 * 1024);
  const list = (): Promise<boolean> =>
    step('list (credentials and bucket access)', async () => {
      let n = 0;
      for await (const _o of store.list('')) if (++n >= 1000) break;
      return `${n}${n >= 1000 ? '+' : ''} objects under ${maskUri(uri)}`;
    });
  const upload = (): Promise<boolean> =>
    step('multipart upload', async () => {
      const info = await store.put(
        key,
        Readable.from(
          (function* () {
            for (let i = 0; i < 20; i++) yield block;
          })(),
        ),
      );
      if (info.size !== size) throw new Error(`stored ${info.size} bytes, expected ${size}`);
      return `${formatBytes(size)} stored`;
    });
  // With create_bucket a missing bucket is expected: the first write creates it, so it goes first.
  let wrote: boolean;
  if (parseCloudUri(uri).params.createBucket) {
    wrote = await upload();
    if (!wrote) return failures;
    await list();
  } else {
    if (!(await list())) return failures;
    wrote = await upload();
  }
  if (wrote) {
    await step('ranged read', async () => {
      const start = 5 * 1024 * 1024 + 17;
      const got = await new Promise<Buffer>((resolve, reject) => {
        store.get(key, { start, end: start + 99 }).then((s) => {
          const chunks: Buffer[] = [];
          s.on('data', (c: Buffer) => chunks.push(c))
            .on('end', () => resolve(Buffer.concat(chunks)))
            .on('error', reject);
        }, reject);
      });
      const expected = block.subarray(start % block.length, (start % block.length) + 100);
      if (!got.equals(expected)) throw new Error(`bytes ${start}–${start + 99} differ from what was written`);
      return '100 bytes from the middle match';
    });
    await step('delete', async () => {
      await store.delete(key);
      if (await store.stat(key)) throw new Error('the object is still there');
      return 'test object removed';
    });
  }
  return failures;
}
