/**
 * `switchboard bench <scenario>`: load generators that measure a running server (loopback only):
 * connections (bench/connections.ts), throughput (bench/throughput.ts), drain (bench/drain.ts) and storm
 * (bench/storm.ts). Each prints a progress line on stderr while it runs and a summary table at the end
 * (or, with --json, exactly one JSON object on stdout); --report writes a self-contained HTML page
 * (bench/report-html.ts). A failed run exits with 2, bad flags with 1.
 */
import type { Command } from 'commander';
import { parseDuration } from '../../util/duration.js';
import { EXIT, fail } from '../client-options.js';

type Flags = Record<string, string | boolean | undefined>;

const TARGET_HELP = 'the server (loopback only)';
const DEFAULT_TARGET = 'sbp://127.0.0.1:7070';

/** Writes the HTML report, if asked; a failure to write is reported but does not hide the result. */
async function maybeReport(file: string | null, make: () => unknown): Promise<void> {
  if (file === null) return;
  try {
    const { writeReport } = await import('../../../bench/report-html.js');
    writeReport(file, make() as Parameters<typeof writeReport>[1]);
    process.stderr.write(`wrote ${file}\n`);
  } catch (err) {
    process.stderr.write(`--report ${file}: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = EXIT.error;
  }
}

function usage(err: unknown): never {
  return fail('USAGE', err instanceof Error ? err.message : String(err), EXIT.usage);
}

/**
 * The life of one scenario command: options (bad ones: usage, exit 1), the run, one JSON object or the
 * table, the exit code (2 for a failed run), then the HTML report if asked.
 */
async function runScenario<O extends { json: boolean; report: string | null }, R extends { ok: boolean }>(
  resolve: () => O,
  run: (opts: O) => Promise<R>,
  table: (result: R) => string,
  report: (result: R) => unknown,
): Promise<void> {
  let opts: O;
  try {
    opts = resolve();
  } catch (err) {
    usage(err);
  }
  try {
    const r = await run(opts);
    process.stdout.write(opts.json ? `${JSON.stringify(r)}\n` : table(r));
    process.exitCode = r.ok ? EXIT.ok : EXIT.error;
    await maybeReport(opts.report, () => report(r));
  } catch (err) {
    fail('BENCH', err instanceof Error ? err.message : String(err), EXIT.error);
  }
}

function str(v: string | boolean | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** A scenario's command with --target, --json and --report, which every scenario has. */
function scenario(bench: Command, name: string): Command {
  return bench
    .command(name)
    .option('--target <url>', TARGET_HELP, DEFAULT_TARGET)
    .option('--json', 'print one JSON object instead of the table')
    .option('--report <file.html>', 'also write a self-contained HTML report');
}

/** What every scenario's options take from those flags and --server-pid. */
function commonFlags(flags: Flags): { target?: string; serverPid?: string; json: boolean; report?: string } {
  return {
    target: str(flags.target),
    serverPid: str(flags.serverPid),
    json: flags.json === true,
    report: str(flags.report),
  };
}

/** --server-pid of the scenarios that measure the server's CPU. */
const CPU_SERVER_PID_HELP = 'the server process whose tree CPU is measured (default: found from the port)';

export function registerBench(program: Command): void {
  const bench = program.command('bench').description('load generators that measure a running server');
  scenario(bench, 'connections')
    .description(
      'open N idle authenticated connections to a server, hold them, and report connects/s and server RSS per connection',
    )
    .requiredOption('--count <n>', 'connections to open')
    .option('--rate <r>', 'connects per second over all generator processes (default: no limit)')
    .option('--hold <duration>', 'how long to hold them once all are connected', '60s')
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
    .action(async (flags: Flags) => {
      const { resolveOptions, runConnections, summaryTable } = await import('../../../bench/connections.js');
      const { connectionsReport, ConnectionSampler } = await import('../../../bench/report-html.js');
      let opts: ReturnType<typeof resolveOptions>;
      try {
        opts = resolveOptions(
          {
            count: flags.count as string,
            rate: str(flags.rate),
            hold: flags.hold as string,
            target: flags.target as string,
            serverPid: str(flags.serverPid),
            processes: str(flags.processes),
            perProcess: flags.perProcess as string,
            sources: str(flags.sources),
            sourceCount: str(flags.sourceCount),
            heartbeatPing: flags.heartbeatPing !== false,
            tokenSecret: str(flags.tokenSecret) ?? process.env.SWITCHBOARD_AUTH_SECRET ?? '',
            concurrency: flags.concurrency as string,
            json: flags.json === true,
          },
          parseDuration,
        );
      } catch (err) {
        usage(err);
      }
      const report = str(flags.report) ?? null;
      // The report's connections-over-time chart: the server side's established sockets, sampled here.
      const sampler = report === null ? null : new ConnectionSampler(opts.host, opts.port);
      try {
        const result = await runConnections(opts);
        sampler?.stop();
        process.stdout.write(opts.json ? `${JSON.stringify(result)}\n` : summaryTable(result));
        process.exitCode = result.generatorErrors.length > 0 ? EXIT.error : EXIT.ok;
        await maybeReport(report, () => connectionsReport(result, sampler!));
      } catch (err) {
        sampler?.stop();
        fail('BENCH', err instanceof Error ? err.message : String(err), EXIT.error);
      }
    });

  scenario(bench, 'throughput')
    .description(
      'U users send direct messages to random other users: delivered msg/s, latency percentiles, server CPU per message',
    )
    .option('--users <n>', 'connected users', '1000')
    .option('--size <bytes>', 'payload size', '100')
    .option('--duration <duration>', 'measured window', '20s')
    .option('--warmup <duration>', 'warm-up before the window, excluded from the figures', '3s')
    .option('--window <k>', 'closed loop: messages in flight per user (default 4)')
    .option(
      '--rate <r>',
      'open loop instead: messages per second in total, latency from the intended send time',
    )
    .option('--ephemeral', 'ephemeral SENDs (delivered only to connected devices, seq 0)')
    .option('--processes <p>', 'generator processes; each sends only among its own users', '1')
    .option('--ack-every <n>', 'ACK every n DELIVERs (default: half the WELCOME window)')
    .option(
      '--ack-delay <ms>',
      'ACK at the latest this long after the first unacknowledged DELIVER (default: 100, as the SDK; 0: only every n)',
    )
    .option('--server-pid <pid>', CPU_SERVER_PID_HELP)
    .action(async (flags: Flags) => {
      const m = await import('../../../bench/throughput.js');
      await runScenario(
        () =>
          m.resolveThroughputOptions(
            {
              users: str(flags.users),
              size: str(flags.size),
              duration: str(flags.duration),
              warmup: str(flags.warmup),
              window: str(flags.window),
              rate: str(flags.rate),
              ephemeral: flags.ephemeral === true,
              processes: str(flags.processes),
              ackEvery: str(flags.ackEvery),
              ackDelay: str(flags.ackDelay),
              ...commonFlags(flags),
            },
            parseDuration,
          ),
        m.runThroughput,
        m.throughputTable,
        m.throughputReport,
      );
    });

  scenario(bench, 'drain')
    .description(
      'store M messages for an offline user, then time its reconnect until the last DELIVER of the replay',
    )
    .requiredOption('--messages <m>', 'messages stored (the server’s inbox cap must allow them)')
    .option('--size <bytes>', 'payload size', '100')
    .option('--server-pid <pid>', CPU_SERVER_PID_HELP)
    .action(async (flags: Flags) => {
      const m = await import('../../../bench/drain.js');
      await runScenario(
        () =>
          m.resolveDrainOptions({
            messages: flags.messages as string,
            size: str(flags.size),
            ...commonFlags(flags),
          }),
        m.runDrain,
        m.drainTable,
        m.drainReport,
      );
    });

  scenario(bench, 'storm')
    .description(
      'cut N connected, sending clients at once; time until all are back and check that no ACCEPTED message was lost',
    )
    .requiredOption('--count <n>', 'connected clients (at least 2)')
    .option('--in-flight <k>', 'durable SENDs each client keeps in flight to the next client', '2')
    .option(
      '--client-rate <r>',
      'new messages per second per client at most (0 = none: always K in flight)',
      '0',
    )
    .option('--size <bytes>', 'payload size', '100')
    .option('--before <duration>', 'sending before the cut', '2s')
    .option('--after <duration>', 'sending once all are back', '2s')
    .option('--timeout <duration>', 'time limit for every client to be back after the cut', '120s')
    .option(
      '--restart',
      'cut by SIGTERM to the server (--server-pid, else found from the port); its supervisor must restart it',
    )
    .option('--server-pid <pid>', 'with --restart: the server process to send SIGTERM to')
    .option('--restart-cmd <cmd>', 'cut by running this shell command (e.g. "systemctl restart switchboard")')
    .option('--concurrency <n>', 'connects in progress at most', '512')
    .action(async (flags: Flags) => {
      const m = await import('../../../bench/storm.js');
      await runScenario(
        () =>
          m.resolveStormOptions(
            {
              count: flags.count as string,
              inFlight: str(flags.inFlight),
              clientRate: str(flags.clientRate),
              size: str(flags.size),
              before: str(flags.before),
              after: str(flags.after),
              timeout: str(flags.timeout),
              restart: flags.restart === true,
              restartCmd: str(flags.restartCmd),
              concurrency: str(flags.concurrency),
              ...commonFlags(flags),
            },
            parseDuration,
          ),
        m.runStorm,
        m.stormTable,
        m.stormReport,
      );
    });
}
