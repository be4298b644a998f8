import type { Command } from 'commander';

export function registerChat(program: Command): void {
  program.command('chat').description('(not yet built)');
}
