import { Command } from 'commander';
import { engineFamily } from '../../engines/family.js';
import { openEngine } from '../../engines/index.js';
import { DbBackupError, errorMessage } from '../../errors.js';
import { planCompression } from '../../pipeline/compression.js';
import { openStore } from '../../storage/uri.js';
import { TOOL_VERSION } from '../../version.js';
import {
  backupDir,
  compressionChoice,
  connectionOptions,
  explicitEngine,
  globals,
  out,
  table,
} from '../context.js';
import { archivingCheck } from '../../pitr/status.js';

export function statusCommand(): Command {
  return new Command('status')
    .description('Check the connection, the server version and the dump/restore tools')
    .option('--json', 'print as JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const g = globals(cmd);
      const engineName = explicitEngine(g) ?? 'postgres';
      const engine = await openEngine(connectionOptions(g, engineName));
      try {
        const [server, tools] = await Promise.all([
          engine.serverInfo().then(
            (s) => ({ ok: true as const, ...s }),
            (err: unknown) => ({
              ok: false as const,
              error: errorMessage(err),
              hint: err instanceof DbBackupError ? err.hint : undefined,
            }),
          ),
          engine.tools(),
        ]);
        const { algorithm, level } = compressionChoice(g);
        const compression = await planCompression(algorithm, level);
        const archiving = server.ok
          ? await archivingCheck(engine as Parameters<typeof archivingCheck>[0])
          : undefined;
        const report = {
          tool: { name: 'dbbackup', version: TOOL_VERSION, node: process.version },
          engine: engineName,
          endpoint: engine.endpoint,
          user: engine.user,
          server,
          tools,
          compression: compression.implementation,
          backupDir: (await openStore(backupDir(g))).location,
          archiving,
        };
        if (opts.json) out.json(report);
        else {
          out.line(`dbbackup ${TOOL_VERSION} (Node.js ${process.version})`);
          out.line(`Engine:       ${engineName}`);
          out.line(`Server:       ${engine.endpoint} as ${engine.user}`);
          out.line(
            server.ok ? `Connection:   ok, ${server.versionString}` : `Connection:   FAILED: ${server.error}`,
          );
          if (!server.ok && server.hint) out.line(`              hint: ${server.hint}`);
          out.line(`Compression:  ${compression.implementation}`);
          out.line(`Backup dir:   ${report.backupDir}`);
          if (archiving)
            out.line(
              `WAL archive:  ${archiving.status === 'ok' ? 'ok' : 'WARNING'}: ${archiving.detail}${archiving.hint ? `\n              hint: ${archiving.hint}` : ''}`,
            );
          out.line('Tools:');
          const rows = tools.map((t) => [t.name, t.path ? (t.version ?? '?') : 'MISSING', t.path ?? '']);
          for (const line of table(['TOOL', 'VERSION', 'PATH'], rows)) out.line(`  ${line}`);
        }
        const missing = tools.filter((t) => !t.path).map((t) => t.name);
        if (!server.ok) throw new DbBackupError('The server is not reachable', { hint: server.hint });
        if (missing.length) {
          throw new DbBackupError(`Missing tools: ${missing.join(', ')}`, {
            hint: engineFamily(engineName).installHint,
          });
        }
      } finally {
        await engine.close();
      }
    });
}
