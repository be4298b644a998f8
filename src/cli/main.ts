/** `switchboard <command>`: one commander program; each command lives in its own module. */
import { Command } from 'commander';
import { registerBench } from './commands/bench.js';
import { registerChat } from './commands/chat.js';
import { registerDoctor } from './commands/doctor.js';
import { registerListen } from './commands/listen.js';
import { registerReload } from './commands/reload.js';
import { registerSend } from './commands/send.js';
import { registerServe } from './commands/serve.js';
import { registerToken } from './commands/token.js';

export function buildProgram(): Command {
  const program = new Command('switchboard')
    .description('Switchboard: a messaging server for hundreds of thousands of connections, and its clients')
    .showHelpAfterError();
  registerServe(program);
  registerReload(program);
  registerToken(program);
  registerSend(program);
  registerListen(program);
  registerChat(program);
  registerBench(program);
  registerDoctor(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  await buildProgram().parseAsync(argv);
}
