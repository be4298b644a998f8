/**
 * The CLI's storage hook: one JSON file per (server, user, device) in a state folder (default
 * `~/.switchboard/state`), written atomically (temp file, fsync, rename).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ClientState, ClientStorage } from './storage.js';

export function defaultStateDir(): string {
  return path.join(os.homedir(), '.switchboard', 'state');
}

/** File name for a (server, user, device): characters outside [A-Za-z0-9._-] become `_`. */
export function stateFileName(server: string, user: string, device: string): string {
  const safe = (s: string): string => s.replace(/[^A-Za-z0-9._-]/g, '_');
  return `${safe(server)}__${safe(user)}__${safe(device)}.json`;
}

export class FileStorage implements ClientStorage {
  readonly file: string;

  constructor(
    readonly dir: string,
    server: string,
    user: string,
    device: string,
  ) {
    this.file = path.join(dir, stateFileName(server, user, device));
  }

  async load(): Promise<ClientState | null> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    try {
      return JSON.parse(text) as ClientState;
    } catch (err) {
      throw new Error(
        `${this.file} is not valid JSON (${(err as Error).message}); move it away to start afresh`,
      );
    }
  }

  async save(state: ClientState): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      const fh = await open(tmp, 'w', 0o600);
      try {
        await fh.writeFile(`${JSON.stringify(state)}\n`);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, this.file);
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw err;
    }
  }
}
