#!/usr/bin/env node
const [major] = process.versions.node.split('.').map(Number);
if (major < 22) {
  console.error(
    `dbbackup: Node.js >= 22 is required (this is ${process.version}). Hint: run ". scripts/env.sh" in the repository, or install Node.js 22 LTS.`,
  );
  process.exit(2);
}
// V8's compiled code for dist/ and its dependencies is cached on disk (Node's compile cache, in the OS
// temporary directory; keyed by file contents): ~15-20 ms less CPU per run. NODE_DISABLE_COMPILE_CACHE=1
// turns it off.
const { enableCompileCache } = await import('node:module');
enableCompileCache?.();
// PostgreSQL runs `wal push` / `wal fetch` once per WAL segment: they skip the full command line
// (commander, every command's module) and load only what the archive needs. Their --help is the full
// command line's: the lean parser knows no help text.
const [, , first, second, ...rest] = process.argv;
const wantsHelp = rest.includes('--help') || rest.includes('-h');
if (
  first === 'wal' &&
  ['push', 'archive', 'fetch', 'probe', 'uploader', 'prefetcher'].includes(second) &&
  !wantsHelp
) {
  const { walMain } = await import('../dist/cli/wal-main.js');
  process.exitCode = await walMain(process.argv.slice(3));
} else {
  await import('../dist/cli/main.js');
}
