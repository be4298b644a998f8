/** `switchboard bench connections`: the load generator for held connections (bench/connections.ts). */
import type { Command } from 'commander';
import { parseDuration } from '../../util/duration.js';
import { EXIT, fail } from '../client-options.js';

export function registerBench(program: Command): void {
  const bench = program.command('bench').description('load generators that measure a running server');
  bench
    .command('connections')
    .description(
      'open N idle authenticated connections to a server, hold them, and report connects/s and server RSS per connection',
    )
    .requiredOption('--count <n>', 'connections to open')
    .option('--rate <r>', 'connects per second over all generator processes (default: no limit)')
    .option('--hold <duration>', 'how long to hold them once all are connected', '60s')
    .option('--target <url>', 'the server (loopback only)', 'sbp://127.0.0.1:7070')
    .option('--server-pid <pid>', 'the server process whose tree is measured (default: found from the port)')
    .option('--processes <p>', 'generator processes (default: enough for --per-process)')
    .option('--per-process <n>', 'sockets per generator process at most', '19000')
    .option('--sources <list>', 'source addresses, comma-separated (127.0.0.2,127.0.0.3,…)')
    .option('--source-count <k>', 'use 127.0.0.2 … as K source addresses (default: ≤ 25 000 clients each)')
    .option('--heartbeat-ping', 'PING every heartbeatMs of WELCOME so idle timeouts never fire (default)')
    .option('--no-heartbeat-ping', 'hold silently: the server closes them after 2 × heartbeat')
    .option(
      '--token-secret <secret>',
      'sign HS256 tokens for a server with --auth-secret (or SWITCHBOARD_AUTH_SECRET)',
    )
    .option('--concurrency <n>', 'connects in progress per generator process at most', '512')
    .option('--json', 'print one JSON object instead of the table')
    .action(async (flags: Record<string, string | boolean | undefined>) => {
      const { resolveOptions, runConnections, summaryTable } = await import('../../../bench/connections.js');
      let opts: ReturnType<typeof resolveOptions>;
      try {
        opts = resolveOptions(
          {
            count: flags.count as string,
            rate: flags.rate as string | undefined,
            hold: flags.hold as string,
            target: flags.target as string,
            serverPid: flags.serverPid as string | undefined,
            processes: flags.processes as string | undefined,
            perProcess: flags.perProcess as string,
            sources: flags.sources as string | undefined,
            sourceCount: flags.sourceCount as string | undefined,
            heartbeatPing: flags.heartbeatPing !== false,
            tokenSecret:
              (flags.tokenSecret as string | undefined) ?? process.env.SWITCHBOARD_AUTH_SECRET ?? '',
            concurrency: flags.concurrency as string,
            json: flags.json === true,
          },
          parseDuration,
        );
      } catch (err) {
        fail('USAGE', err instanceof Error ? err.message : String(err), EXIT.usage);
      }
      try {
        const result = await runConnections(opts);
        process.stdout.write(opts.json ? `${JSON.stringify(result)}\n` : summaryTable(result));
        process.exitCode = result.generatorErrors.length > 0 ? EXIT.error : EXIT.ok;
      } catch (err) {
        fail('BENCH', err instanceof Error ? err.message : String(err), EXIT.error);
      }
    });
}
