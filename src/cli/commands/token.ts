import type { Command } from 'commander';

export function registerToken(program: Command): void {
  program.command('token').description('(not yet built)');
}
