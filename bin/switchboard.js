#!/usr/bin/env node
// The `switchboard` command: runs the compiled CLI (built by `npm install` / `npm run build`).
import('../dist/src/cli/main.js').then((m) => m.main(process.argv));
