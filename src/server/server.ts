/**
 * One server process: the TCP listener with admission control, the HTTP port (health), the
 * sessions, the store, the retention sweep and graceful shutdown (PROTOCOL.md sections 4 and 7).
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createTcpServer, type Socket, type Server as TcpServer } from 'node:net';
import type { Logger } from 'pino';
import { ErrorCode, encodeFrame } from '../protocol/index.js';
import type { InboxStore } from '../store/inbox-store.js';
import { TcpConnection, WriteBatcher } from '../transport/tcp.js';
import { type Authenticator, isLoopbackHost } from './auth.js';
import { openFileLimit } from './fd-limit.js';
import { Home, type Homes, LocalHomes, type WorkerSink } from './home.js';
import type { Limits } from './limits.js';
import { Router } from './router.js';
import { Session, type SessionContext } from './session.js';
import { TimerWheel } from './timer-wheel.js';

export interface ServerOptions {
  host: string;
  port: number;
  httpHost: string;
  httpPort: number;
  limits: Limits;
  /** The store of the users this process is home to; closed on shutdown. */
  store: InboxStore;
  /** How users' homes are reached; default: this process is home to every user. */
  homes?: (router: Router) => Homes;
  /** This process's worker index (SessionRef.worker). */
  worker?: number;
  auth: Authenticator;
  log: Logger;
  /** WELCOME's `node`. */
  nodeName: string;
  /** How often the retention sweep runs, ms. */
  purgeIntervalMs?: number;
}

export class SwitchboardServer {
  private readonly sessions = new Set<Session>();
  private readonly wheel = new TimerWheel();
  private readonly batcher = new WriteBatcher();
  private readonly router: Router;
  private readonly ctx: SessionContext;
  private readonly maxConnections: number;
  private readonly closeCounts = new Map<string, number>();
  private tcp: TcpServer | null = null;
  private http: HttpServer | null = null;
  private purgeTimer: ReturnType<typeof setInterval> | null = null;
  private shuttingDown = false;
  private allClosed: (() => void) | null = null;
  private rejectedFull = 0;

  constructor(private readonly opts: ServerOptions) {
    if (!opts.auth.open) {
      /* authenticated: any host */
    } else if (!isLoopbackHost(opts.host)) {
      throw new Error(
        `refusing to listen on ${opts.host} without an auth secret: open mode lets anyone claim any user. ` +
          'Set --auth-secret (or SWITCHBOARD_AUTH_SECRET), or listen on 127.0.0.1.',
      );
    }
    this.router = new Router(opts.worker ?? 0, opts.log);
    this.router.homes = opts.homes
      ? opts.homes(this.router)
      : new LocalHomes(new Home(opts.store, localSink(this.router)));
    const fdLimit = openFileLimit();
    const derived = fdLimit ? Math.max(16, fdLimit - opts.limits.reservedFds) : 1_000_000;
    const configured = opts.limits.maxConnections;
    this.maxConnections = configured > 0 ? Math.min(configured, derived) : configured < 0 ? 0 : derived;
    this.ctx = {
      limits: opts.limits,
      decoderLimits: { firstFrame: opts.limits.maxHelloFrame, frame: opts.limits.maxFrame },
      router: this.router,
      wheel: this.wheel,
      auth: opts.auth,
      log: opts.log,
      nodeName: opts.nodeName,
      onSessionClosed: (s) => {
        this.sessions.delete(s);
        if (this.sessions.size === 0) this.allClosed?.();
      },
      countClose: (reason) => this.closeCounts.set(reason, (this.closeCounts.get(reason) ?? 0) + 1),
    };
  }

  async listen(): Promise<{ port: number; httpPort: number }> {
    const { opts } = this;
    this.wheel.start();
    this.tcp = createTcpServer({ noDelay: true, highWaterMark: opts.limits.writeHighWaterBytes }, (socket) =>
      this.accept(socket),
    );
    await listenOn(this.tcp, opts.port, opts.host, opts.limits.listenBacklog);
    // EMFILE and friends on accept: logged, never fatal (the cap keeps us below the fd limit).
    this.tcp.on('error', (err) => opts.log.error({ err }, 'listener error'));
    this.http = createHttpServer((req, res) => {
      if (req.url === '/healthz') {
        res.writeHead(this.shuttingDown ? 503 : 200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            status: this.shuttingDown ? 'shutting down' : 'ok',
            connections: this.sessions.size,
          }),
        );
        return;
      }
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    });
    await listenOn(this.http, opts.httpPort, opts.httpHost, 511);
    this.startPurgeSweep();
    const port = (this.tcp.address() as { port: number }).port;
    const httpPort = (this.http.address() as { port: number }).port;
    opts.log.info(
      {
        host: opts.host,
        port,
        httpPort,
        maxConnections: this.maxConnections,
        auth: opts.auth.open ? 'open' : 'jwt',
      },
      'listening',
    );
    return { port, httpPort };
  }

  /** Admission control before any session state is allocated. */
  private accept(socket: Socket): void {
    if (this.shuttingDown || this.sessions.size >= this.maxConnections) {
      const code = this.shuttingDown ? ErrorCode.SHUTTING_DOWN : ErrorCode.SERVER_FULL;
      if (code === ErrorCode.SERVER_FULL && this.rejectedFull++ % 1000 === 0) {
        this.opts.log.warn({ max: this.maxConnections, rejected: this.rejectedFull }, 'server full');
      }
      socket.on('error', () => {});
      socket.end(
        encodeFrame({
          type: 'ERROR',
          code,
          ref: this.reconnectDelay(),
          message: code === ErrorCode.SERVER_FULL ? 'server is full, retry later' : 'server is shutting down',
        }),
      );
      setTimeout(() => socket.destroy(), this.opts.limits.closeGraceMs).unref();
      return;
    }
    const conn = new TcpConnection(socket, this.batcher, this.opts.limits.writeHighWaterBytes);
    this.sessions.add(new Session(conn, this.ctx));
  }

  private reconnectDelay(): number {
    return Math.floor(Math.random() * this.opts.limits.reconnectSpreadMs);
  }

  /** Retention: small bounded batches, yielding to the event loop between them. */
  private startPurgeSweep(): void {
    const interval = this.opts.purgeIntervalMs ?? 60_000;
    let running = false;
    const step = (): void => {
      if (this.shuttingDown) {
        running = false;
        return;
      }
      this.opts.store.purge(Date.now(), 500).then(
        (removed) => {
          if (removed > 0) setImmediate(step);
          else running = false;
        },
        (err) => {
          running = false;
          this.opts.log.warn({ err }, 'retention sweep failed');
        },
      );
    };
    this.purgeTimer = setInterval(() => {
      if (!running) {
        running = true;
        step();
      }
    }, interval);
    this.purgeTimer.unref();
  }

  get stats(): { connections: number; users: number; closes: Record<string, number> } {
    return {
      connections: this.sessions.size,
      users: this.router.userCount,
      closes: Object.fromEntries(this.closeCounts),
    };
  }

  /**
   * Graceful shutdown: stop accepting, SHUTTING_DOWN to every client (with a spread reconnect delay),
   * wait for the connections to close (the close grace destroys stragglers), commit the store.
   */
  async shutdown(): Promise<void> {
    await this.drain();
    await this.close();
  }

  /** Stops accepting and closes every session with SHUTTING_DOWN; resolves when they are gone. */
  async drain(): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    const { log, limits } = this.opts;
    log.info({ connections: this.sessions.size }, 'shutting down');
    if (this.purgeTimer) clearInterval(this.purgeTimer);
    const tcpClosed = new Promise<void>((resolve) =>
      this.tcp ? this.tcp.close(() => resolve()) : resolve(),
    );
    const drained = new Promise<void>((resolve) => {
      this.allClosed = resolve;
      if (this.sessions.size === 0) resolve();
    });
    for (const s of [...this.sessions])
      s.fail(ErrorCode.SHUTTING_DOWN, 'server is shutting down', this.reconnectDelay());
    // The wheel destroys each connection after the close grace; this is the backstop.
    await Promise.race([drained, sleep(limits.closeGraceMs + 2000)]);
    await tcpClosed;
  }

  /** After drain(): stops the timers and the HTTP port and commits and closes the store. */
  async close(): Promise<void> {
    this.wheel.stop();
    await new Promise<void>((resolve) => {
      if (!this.http) return resolve();
      this.http.close(() => resolve());
      this.http.closeAllConnections();
    });
    await this.opts.store.close();
    this.opts.log.info(this.stats, 'stopped');
  }
}

/** With one worker, a home's announcements go straight to this worker's router. */
function localSink(router: Router): WorkerSink {
  return {
    stored: (_w, inbox, message) => router.stored(inbox, message),
    ephemeral: (_w, user, deliver, except) => router.ephemeral(user, deliver, except),
    replace: (_w, _user, _device, sid) => router.replace(sid),
  };
}

function listenOn(
  server: TcpServer | HttpServer,
  port: number,
  host: string,
  backlog: number,
): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, backlog }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
