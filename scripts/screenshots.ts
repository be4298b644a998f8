/**
 * Writes the README's pictures of the web app, docs/screenshot-phone.png (alice on a phone) and
 * docs/screenshot-desktop.png (bob on a desktop): a real server on free ports with a temp data folder,
 * Chromium, and a short conversation between them, with a few other people writing to bob first.
 * Run with `npm run screenshots` (after `npm run build`); the tests never write to docs/.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MemoryStorage, SwitchboardClient, TcpTransport } from '../src/client/index.js';
import {
  messageField,
  messageRow,
  openConversation,
  sendMessage,
  signIn,
} from '../test/browser/app-driver.js';
import { DESKTOP, launchBrowser, PHONE, WEB_ROOT } from '../test/helpers/browser.js';
import { type ServerProcess, startServer } from '../test/helpers/server-process.js';

/** docs/ of the repository (this file runs from dist/scripts/). */
const DOCS = fileURLToPath(new URL('../../docs/', import.meta.url));

const DIALOGUE: ['alice' | 'bob', string][] = [
  ['alice', 'Hey bob! Are we still on for the demo at 3?'],
  ['bob', 'Yes! Just finishing the slides.'],
  ['alice', "Can you add the latency chart from last night's benchmark?"],
  ['bob', 'Already in: the percentile curve, 100 pairs 🚀'],
  ['alice', "Amazing. I'll bring two phones for the offline part"],
  ['bob', 'Perfect. Switch the Wi-Fi off mid-message, it still arrives'],
  ['alice', "That's the best part 😄 See you at 3"],
];

/** Messages to bob from people he has not talked to in the browser yet (through the SDK, over TCP). */
async function othersWrite(server: ServerProcess): Promise<void> {
  const say = async (user: string, to: string, texts: string[], group?: string) => {
    const client = new SwitchboardClient({
      endpoint: server.endpoint,
      user,
      device: 'cli',
      transport: new TcpTransport(),
      storage: new MemoryStorage(),
    });
    await client.start();
    try {
      if (group) await client.join(group);
      for (const text of texts) await client.send(to, text);
    } finally {
      await client.close();
    }
  };
  await say('bob', '#launch', [], '#launch');
  await say('erin', '#launch', ['Release notes are up for review'], '#launch');
  await say('dave', 'bob', ['Pushed the fix for the reconnect bug']);
  await say('carol', 'bob', ['Lunch tomorrow?', 'The new ramen place on 5th opens at noon']);
}

async function main(): Promise<void> {
  const server = await startServer({ args: ['--web-root', WEB_ROOT], workers: 1 });
  const browser = await launchBrowser();
  try {
    await othersWrite(server);
    const baseURL = `http://127.0.0.1:${server.httpPort}`;
    // Two device pixels per CSS pixel: sharp, and still a reasonable file for the README.
    const phone = await browser.newContext({ ...PHONE, deviceScaleFactor: 2, baseURL });
    const desktop = await browser.newContext({ ...DESKTOP, baseURL });
    const pages = { alice: await phone.newPage(), bob: await desktop.newPage() };
    await Promise.all([pages.alice.goto('/'), pages.bob.goto('/')]);
    await signIn(pages.alice, 'alice', { device: 'pixel' });
    await signIn(pages.bob, 'bob', { device: 'laptop' });
    await openConversation(pages.alice, 'bob');
    await openConversation(pages.bob, 'alice');

    for (const [from, text] of DIALOGUE) {
      await sendMessage(pages[from], text);
      await messageRow(pages[from === 'alice' ? 'bob' : 'alice'], text).waitFor();
    }
    // The last message read on bob's side: alice's phone shows ✓✓.
    const last = DIALOGUE[DIALOGUE.length - 1]![1];
    await messageRow(pages.alice, last).getByRole('img', { name: 'delivered' }).waitFor();

    await messageField(pages.bob).pressSequentially('On it', { delay: 30 });
    await pages.alice.getByText('bob is typing…').waitFor();
    await messageField(pages.alice).blur(); // no focus ring in the picture
    await pages.alice.screenshot({ path: path.join(DOCS, 'screenshot-phone.png') });

    await messageField(pages.bob).fill('');
    await messageField(pages.alice).pressSequentially('One more', { delay: 30 });
    await pages.bob.getByText('alice is typing…').waitFor();
    await messageField(pages.bob).blur();
    await pages.bob.screenshot({ path: path.join(DOCS, 'screenshot-desktop.png') });
    console.log(`wrote ${path.join(DOCS, 'screenshot-phone.png')} and screenshot-desktop.png`);
  } finally {
    await browser.close();
    await server.stop();
  }
}

await main();
