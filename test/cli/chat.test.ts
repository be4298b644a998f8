/**
 * `switchboard chat` as two child processes talking through a real server (stdin piped, so no TTY):
 * lines go both ways, ✓ on ACCEPTED and ✓✓ once the peer's device received it, the peer's presence,
 * typing is not shown for piped input, a group by /to #group, and lines sent from another device of the
 * same user.
 */
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BIN, type ServerProcess, startServer } from '../helpers/server-process.js';

class Chat {
  private out = '';
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly waiters = new Set<() => void>();

  constructor(args: string[], home: string) {
    this.child = spawn(process.execPath, [BIN, 'chat', ...args], {
      env: { ...process.env, HOME: home, SWITCHBOARD_TOKEN: '', SWITCHBOARD_AUTH_SECRET: '' },
    });
    const take = (c: Buffer): void => {
      this.out += c;
      for (const w of this.waiters) w();
    };
    this.child.stdout.on('data', take);
    this.child.stderr.on('data', take);
  }

  line(text: string): void {
    this.child.stdin.write(`${text}\n`);
  }

  /** Resolves when the output so far matches; fails with the output after `ms`. */
  async until(re: RegExp, ms = 10_000): Promise<string> {
    const deadline = Date.now() + ms;
    for (;;) {
      const m = re.exec(this.out);
      if (m) return m[0];
      const left = deadline - Date.now();
      if (left <= 0) assert.fail(`no ${re} in the chat output:\n${this.out}`);
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          clearTimeout(timer);
          this.waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, left);
        this.waiters.add(wake);
      });
    }
  }

  get output(): string {
    return this.out;
  }

  /** Ends stdin (the chat quits) and waits for the exit code. */
  async quit(): Promise<number | null> {
    if (this.child.exitCode !== null) return this.child.exitCode;
    const exited = new Promise<number | null>((resolve) => this.child.once('exit', resolve));
    this.child.stdin.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    const code = await exited;
    clearTimeout(timer);
    return code;
  }
}

describe('switchboard chat', () => {
  let server: ServerProcess;
  let home: string;
  const chats: Chat[] = [];
  const chat = (user: string, ...args: string[]): Chat => {
    const c = new Chat(
      [
        '--server',
        server.endpoint,
        '--state-dir',
        path.join(home, `state-${user}-${chats.length}`),
        '--user',
        user,
        ...args,
      ],
      home,
    );
    chats.push(c);
    return c;
  };

  before(async () => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-chat-'));
    server = await startServer();
  });
  after(async () => {
    await Promise.all(chats.map((c) => c.quit()));
    await server?.stop();
    fs.rmSync(home, { recursive: true, force: true });
  });

  test('two chats: lines both ways, ✓ then ✓✓, and the peer online then offline', async () => {
    const alice = chat('ch-alice', '--to', 'ch-bob');
    await alice.until(/connected to .* as ch-alice/);
    await alice.until(/-- ch-bob is offline/);
    const bob = chat('ch-bob', '--to', 'ch-alice');
    await alice.until(/-- ch-bob is online since \d\d:\d\d/);
    await bob.until(/-- ch-alice is online/);
    alice.line('hello bob');
    await alice.until(/ {3}✓ hello bob/);
    await bob.until(/\d\d:\d\d:\d\d ch-alice: hello bob/);
    await alice.until(/ {3}✓✓ ch-bob got: hello bob/);
    bob.line('hi alice');
    await alice.until(/ch-bob: hi alice/);
    await bob.until(/✓✓ ch-alice got: hi alice/);
    assert.equal(await bob.quit(), 0);
    await alice.until(/-- ch-bob is offline since/);
  });

  test('a group, and the lines sent from the same user on another device', async () => {
    const phone = chat('ch-carol', '--device', 'phone');
    const laptop = chat('ch-carol', '--device', 'laptop');
    const dan = chat('ch-dan');
    for (const c of [phone, dan]) c.line('/join #ch-team');
    await phone.until(/-- joined #ch-team/);
    await dan.until(/-- joined #ch-team/);
    phone.line('/to #ch-team');
    phone.line('morning all');
    await phone.until(/✓ morning all/);
    await dan.until(/ch-carol → #ch-team: morning all/);
    // The laptop shows what the phone sent.
    await laptop.until(/ch-carol → #ch-team: morning all/);
    assert.doesNotMatch(phone.output, /ch-carol → #ch-team: morning all/, 'the sending device shows it once');
  });
});
