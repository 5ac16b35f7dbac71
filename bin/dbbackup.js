#!/usr/bin/env node
const [major] = process.versions.node.split('.').map(Number);
if (major < 22) {
  console.error(
    `dbbackup: Node.js >= 22 is required (this is ${process.version}). Hint: run ". scripts/env.sh" in the repository, or install Node.js 22 LTS.`,
  );
  process.exit(2);
}
await import('../dist/cli/main.js');
