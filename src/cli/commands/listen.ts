import type { Command } from 'commander';

export function registerListen(program: Command): void {
  program.command('listen').description('(not yet built)');
}
