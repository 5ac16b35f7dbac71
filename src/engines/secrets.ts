import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/**
 * Files holding secrets for child processes: created 0600 inside a private 0700 directory and
 * removed on dispose, so a password never appears in argv (visible in `ps`).
 */
export class SecretFiles {
  private dir: string | undefined;

  async write(name: string, content: string): Promise<string> {
    this.dir ??= await mkdtemp(path.join(os.tmpdir(), 'dbbackup-secret-'));
    const file = path.join(this.dir, name);
    await writeFile(file, content, { mode: 0o600 });
    return file;
  }

  async dispose(): Promise<void> {
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
    this.dir = undefined;
  }
}
