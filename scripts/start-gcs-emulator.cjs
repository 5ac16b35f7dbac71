#!/usr/bin/env node
// node scripts/start-gcs-emulator.cjs [port] [host]
//
// Runs the firebase-tools Cloud Storage emulator in this process, serving the GCS JSON API, for
// tests (docs: /work/shared/reference/emulators.md §3.2, N22.3). `firebase emulators:start` cannot
// run offline here: it needs Java >= 21 and downloads a rules-runtime jar. The GCS JSON API handlers
// use the emulator's admin storage layer and never evaluate rules, so the rules runtime is replaced
// by no-ops. This reaches into firebase-tools internals (lib/emulator/storage, lib/emulator/registry,
// the private _rulesRuntime): it is pinned to firebase-tools 15.34.2 and refuses any other version.
//
// Blobs live in files under $TMPDIR/firebase/storage/blobs (set TMPDIR to keep them out of /tmp),
// metadata in memory: a restart loses every object. SIGTERM/SIGINT stop it and delete its blobs.
// With a pipe on stdin it also exits when the pipe closes, so a crashed parent leaves nothing behind.
'use strict';
// eslint.config.js gives Node globals to .js/.mjs only, and CommonJS is needed for require():
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');

const PINNED = '15.34.2';
const root = path.join(
  process.env.FIREBASE_TOOLS_DIR || path.join(__dirname, '..', 'node_modules'),
  'firebase-tools',
);
const version = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version;
if (version !== PINNED) {
  console.error(`start-gcs-emulator: firebase-tools ${version} found, this wrapper is written for ${PINNED}`);
  process.exit(2);
}

// The emulator's server closes idle keep-alive sockets after Node's default 5 s, and the SDK may
// reuse such a socket at that moment (ECONNRESET it does not retry, emulators.md N22.3). express'
// app.listen calls http.createServer, so a longer keep-alive applies to the emulator's server.
const createServer = http.createServer;
http.createServer = (...args) => {
  const server = createServer(...args);
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  return server;
};

const base = path.join(root, 'lib/emulator');
const { StorageEmulator } = require(path.join(base, 'storage'));
const { EmulatorRegistry } = require(path.join(base, 'registry'));
const port = Number(process.argv[2] || 9199);
const host = process.argv[3] || '127.0.0.1';
const emu = new StorageEmulator({ projectId: 'demo-backup', host, port, rules: [], auto_download: false });
// Skip the jar download and the java spawn; the GCS JSON API does not consult rules.
emu._rulesRuntime.start = async () => {};
emu._rulesRuntime.stop = async () => {};

const started = Date.now();
// Registration is required: upload URLs are built from EmulatorRegistry.url('storage').
EmulatorRegistry.start(emu).then(
  () => console.log(`GCS emulator on http://${host}:${port} (ready in ${Date.now() - started} ms)`),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  EmulatorRegistry.stop('storage').finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
const stdin = fs.fstatSync(0);
if (stdin.isFIFO() || stdin.isSocket()) process.stdin.on('end', stop).resume();
