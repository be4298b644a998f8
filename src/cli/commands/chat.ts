/**
 * `switchboard chat --user alice`: an interactive terminal client. A line sends to the current peer
 * (`/to bob` or `/to #group`); incoming messages show local time and sender; ✓ marks a message the
 * server accepted, ✓✓ one a device of the peer has received; typing indicators (ephemeral "typing")
 * both ways; the peer's presence; messages sent from the user's other devices; reconnects by itself.
 */
import readline from 'node:readline';
import type { Command } from 'commander';
import type { Message } from '../../client/client.js';
import {
  addCommonOptions,
  type CommonFlags,
  checkAddress,
  describeError,
  EXIT,
  formatTime,
  hex,
  makeClient,
} from '../client-options.js';

interface ChatFlags extends CommonFlags {
  to?: string;
}

const TYPING = 'typing';
const TYPING_EVERY_MS = 3_000;

const HELP = [
  '/to <user|#group>  talk to someone (or a group)',
  '/join #group       join a group    /leave #group  leave it',
  '/help              this help       /quit          leave (also Ctrl-D)',
  'anything else is sent to the current peer',
].join('\n');

export function registerChat(program: Command): void {
  addCommonOptions(
    program
      .command('chat')
      .description('interactive terminal chat')
      .option('-t, --to <address>', 'start talking to this user or #group'),
    'cli-chat',
  ).action(async (flags: ChatFlags) => {
    process.exitCode = await runChat(flags);
  });
}

async function runChat(flags: ChatFlags): Promise<number> {
  let peer = flags.to ? checkAddress(flags.to, '--to') : null;
  const client = makeClient(flags);
  const me = client.user;
  const tty = !!process.stdout.isTTY;
  const rl = readline.createInterface({
    input: process.stdin,
    output: process.stdout,
    terminal: !!process.stdin.isTTY,
  });
  const setPrompt = (): void => rl.setPrompt(tty ? `${peer ?? ''}> ` : '');
  setPrompt();

  /** Prints a line above the prompt without losing what is being typed. */
  const print = (line: string): void => {
    if (tty) {
      readline.clearLine(process.stdout, 0);
      readline.cursorTo(process.stdout, 0);
      process.stdout.write(`${line}\n`);
      rl.prompt(true);
    } else {
      process.stdout.write(`${line}\n`);
    }
  };

  /** Texts of the messages sent from this device, by clientMsgId, until a receipt shows them again. */
  const sentTexts = new Map<number, string>();
  const typingShown = new Map<string, number>();
  const show = (m: Message): void => {
    if (m.ephemeral && m.text === TYPING) {
      if (m.from === me) return;
      const now = Date.now();
      if (now - (typingShown.get(m.from) ?? 0) < TYPING_EVERY_MS) return;
      typingShown.set(m.from, now);
      print(`   ${m.from} is typing…`);
      return;
    }
    if (m.from === me && m.fromDevice === client.device) return; // our own copy: already on screen
    typingShown.delete(m.from);
    const body = m.text ?? `<${m.payload.length} bytes: ${hex(m.payload.subarray(0, 32))}>`;
    const where = m.to === me ? '' : ` → ${m.to}`;
    print(`${formatTime(m.timestamp)} ${m.from}${where}: ${body}`);
  };

  let wasConnected = false;
  client.on('message', show);
  client.on('receipt', (r) => {
    if (r.fromDevice !== client.device) return;
    const text = sentTexts.get(r.clientMsgId);
    if (text === undefined) return;
    sentTexts.delete(r.clientMsgId);
    print(`   ✓✓ ${r.by} got: ${truncate(text)}`);
  });
  client.on('presence', (p) => {
    if (p.user !== peer) return;
    const when = p.since ? ` since ${formatTime(p.since)}` : '';
    print(`-- ${p.user} is ${p.online ? 'online' : 'offline'}${when}`);
  });
  /** Talks to `to` from now on, watching the presence of a user (not of a group). */
  const talkTo = (to: string): void => {
    if (peer && !peer.startsWith('#')) client.unwatch([peer]);
    peer = to;
    if (!to.startsWith('#')) client.watch([to]);
    setPrompt();
  };
  if (peer) talkTo(peer);
  client.on('connected', (info) => {
    print(`-- ${wasConnected ? 'reconnected' : 'connected'} to ${info.endpoint} as ${me}/${client.device}`);
    if (!wasConnected && !peer) print('-- /to <user> picks who to talk to; /help for more');
    wasConnected = true;
  });
  let quitting = false;
  client.on('disconnected', (d) => {
    if (quitting) return;
    print(`-- disconnected (${d.error ? describeError(d.error).message : d.reason}); reconnecting…`);
  });

  let lastTyping = 0;
  process.stdin.on('keypress', (_s: string, key: { name?: string } | undefined) => {
    if (!peer || !client.connected || key?.name === 'return' || key?.name === 'enter') return;
    if (rl.line.startsWith('/') || rl.line === '') return; // commands are not typing
    const now = Date.now();
    if (now - lastTyping < TYPING_EVERY_MS) return;
    lastTyping = now;
    client.send(peer, TYPING, { ephemeral: true }).catch(() => {});
  });

  const sendLine = (to: string, text: string): void => {
    lastTyping = 0;
    const remember = (id: number): void => {
      if (sentTexts.size >= 1000) sentTexts.delete(sentTexts.keys().next().value!);
      sentTexts.set(id, text);
    };
    client.send(to, text, { onId: remember }).then(
      (r) => print(`   ✓ ${truncate(text)}${r.duplicate ? ' (again)' : ''}`),
      (err) => {
        const { name, message } = describeError(err);
        if (name !== 'CLOSED') print(`   ✗ ${truncate(text)}: ${name}: ${message}`);
      },
    );
  };

  const done = new Promise<number>((resolve) => {
    client.on('error', (err) => {
      const { name, message } = describeError(err);
      print(`-- ${name}: ${message}`);
      resolve(EXIT.error);
    });
    rl.on('close', () => resolve(EXIT.ok));
    rl.on('SIGINT', () => resolve(EXIT.ok));
    rl.on('line', (raw) => {
      const line = raw.trim();
      const [cmd, arg] = line.split(/\s+/, 2);
      if (line === '') {
        // nothing
      } else if (cmd === '/quit' || cmd === '/exit') {
        resolve(EXIT.ok);
        return;
      } else if (cmd === '/help') {
        print(HELP);
      } else if (cmd === '/to') {
        if (arg && /^#?[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(arg)) {
          talkTo(arg);
        } else {
          print('usage: /to <user|#group>');
        }
      } else if (cmd === '/join' || cmd === '/leave') {
        const group = arg?.startsWith('#') ? arg : `#${arg ?? ''}`;
        (cmd === '/join' ? client.join(group) : client.leave(group)).then(
          () => print(`-- ${cmd === '/join' ? 'joined' : 'left'} ${group}`),
          (err) =>
            print(`-- ${cmd.slice(1)} ${group}: ${describeError(err).name}: ${describeError(err).message}`),
        );
      } else if (line.startsWith('/') && !line.startsWith('//')) {
        print(`unknown command ${cmd}; /help lists them`);
      } else if (!peer) {
        print('pick someone first: /to <user>');
      } else {
        sendLine(peer, line.startsWith('//') ? line.slice(1) : line);
      }
      if (tty) rl.prompt();
    });
    client.start();
    if (tty) rl.prompt();
  });
  const code = await done;
  // Give messages just typed a moment to be accepted (a piped script ends right after its last line).
  const deadline = Date.now() + 3_000;
  while (client.pendingCount > 0 && client.state !== 'closed' && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const unsent = client.pendingCount;
  quitting = true;
  await client.close();
  rl.close();
  if (unsent) process.stdout.write(`-- ${unsent} message(s) not yet accepted; they are sent next time\n`);
  return code;
}

function truncate(text: string): string {
  return text.length > 40 ? `${text.slice(0, 39)}…` : text;
}
