/**
 * One server process: the TCP listener with admission control, the HTTP port (health, readiness,
 * metrics, and the WebSocket endpoint /sbp), the sessions, the store, the retention sweep and graceful
 * shutdown (PROTOCOL.md sections 1, 4 and 7).
 */
import {
  createServer as createHttpServer,
  type Server as HttpServer,
  type IncomingMessage,
  type ServerResponse,
  STATUS_CODES,
} from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer as createTcpServer, type Socket, type Server as TcpServer } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { WebSocketServer, type Server as WsServer } from 'ws';
import { ErrorCode, type ErrorCodeValue, encodeFrame } from '../protocol/index.js';
import type { InboxStore } from '../store/inbox-store.js';
import { TcpConnection } from '../transport/tcp.js';
import { TlsHandshakeDeadline } from '../transport/tls-deadline.js';
import {
  CLOSE_ERROR_BASE,
  isEndpointPath,
  MAX_WS_MESSAGE,
  MAX_WS_PIECES,
  offersSubprotocol,
  SbpWebSocket,
  selectSubprotocol,
  WebSocketConnection,
  WS_SUBPROTOCOL,
} from '../transport/websocket.js';
import { WriteBatcher } from '../transport/write-batcher.js';
import { type Authenticator, isLoopbackHost } from './auth.js';
import { openFileLimit } from './fd-limit.js';
import { Home, type Homes, type WorkerSink } from './home.js';
import type { Limits } from './limits.js';
import { ServerMetrics } from './metrics.js';
import { Router } from './router.js';
import { Session, type SessionContext } from './session.js';
import { staticFiles } from './static-files.js';
import { type TimerEntry, TimerWheel } from './timer-wheel.js';

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
  /** How often the retention sweep runs, ms (0: never — another process of a shared store sweeps it). */
  purgeIntervalMs?: number;
  /** The built web client, served at / on the HTTP port (none when unset). */
  webRoot?: string;
  /** TLS on both ports (SBP over TLS, HTTPS and wss://): a PEM certificate chain and its key. */
  tls?: { cert: Buffer; key: Buffer };
}

/**
 * HTTP connections accepted and not yet upgraded (WebSocket upgrades in progress, health checks) a
 * process holds at most: beyond it a new one gets 503 at once, so a flood of half-open upgrades cannot
 * starve the worker. Each lives at most the handshake deadline from its accept (cutPendingHttp).
 */
const MAX_PENDING_HTTP = 1024;

/** How long GET /readyz waits for the store's probe before answering not ready. */
const READY_PROBE_MS = 1_000;

export class SwitchboardServer {
  private readonly sessions = new Set<Session>();
  private readonly wheel = new TimerWheel();
  private readonly batcher = new WriteBatcher();
  /** HTTP sockets not yet upgraded, with their accept time (the handshake deadline runs from it). */
  private readonly pendingHttp = new Map<Socket, number>();
  /** One listener for every pending HTTP socket's 'close' (`this` is the socket). */
  private readonly onPendingHttpClose: (this: Socket) => void;
  /** One wheel entry for the handshake deadline of the oldest pending HTTP socket. */
  private readonly pendingHttpDeadline: TimerEntry = {
    timerDeadline: 0,
    timerSlot: -1,
    onTimer: (now) => this.cutPendingHttp(now),
  };
  private wss: WsServer<typeof SbpWebSocket> | null = null;
  private httpStopped: Promise<void> | null = null;
  private readonly router: Router;
  private readonly ctx: SessionContext;
  private readonly maxConnections: number;
  private readonly metrics: ServerMetrics;
  private tcp: TcpServer | null = null;
  private http: HttpServer | HttpsServer | null = null;
  private purgeTimer: ReturnType<typeof setInterval> | null = null;
  private shuttingDown = false;
  private allClosed: (() => void) | null = null;
  private rejectedFull = 0;

  constructor(private readonly opts: ServerOptions) {
    // The HTTP port carries SBP too (WebSocket): open mode needs both on loopback.
    const exposed = [opts.host, opts.httpHost].find((h) => !isLoopbackHost(h));
    if (opts.auth.open && exposed !== undefined) {
      throw new Error(
        `refusing to listen on ${exposed} without an auth secret: open mode lets anyone claim any user. ` +
          'Set --auth-secret (or SWITCHBOARD_AUTH_SECRET), or listen on 127.0.0.1.',
      );
    }
    const pendingHttp = this.pendingHttp;
    this.onPendingHttpClose = function (this: Socket): void {
      pendingHttp.delete(this);
    };
    this.router = new Router(opts.worker ?? 0, opts.log, opts.store.settlesPerTick === true);
    this.router.homes = opts.homes ? opts.homes(this.router) : new Home(opts.store, localSink(this.router));
    const fdLimit = openFileLimit();
    const derived = fdLimit ? Math.max(16, fdLimit - opts.limits.reservedFds) : 1_000_000;
    const configured = opts.limits.maxConnections;
    this.maxConnections = configured > 0 ? Math.min(configured, derived) : configured < 0 ? 0 : derived;
    this.metrics = new ServerMetrics({
      worker: opts.worker ?? 0,
      maxConnections: this.maxConnections,
      transports: opts.tls ? ['tls', 'ws'] : ['tcp', 'ws'],
    });
    this.metrics.observeStore(opts.store);
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
      counters: this.metrics.counters,
    };
  }

  async listen(): Promise<{ port: number; httpPort: number }> {
    const { opts } = this;
    this.wheel.start();
    const handshakeMs = opts.limits.handshakeTimeoutMs;
    // With TLS a session starts once the TLS handshake is done, and the same deadline from the TCP accept
    // covers both handshakes (TlsHandshakeDeadline), so a client that connects and never sends costs no more.
    const tls = opts.tls ? { cert: opts.tls.cert, key: opts.tls.key, handshakeTimeout: handshakeMs } : null;
    const tlsDeadline = tls ? new TlsHandshakeDeadline(handshakeMs) : null;
    const socketOptions = { noDelay: true, highWaterMark: opts.limits.writeHighWaterBytes };
    if (tls) {
      const server = createTlsServer({ ...socketOptions, ...tls });
      tlsDeadline!.watch(server);
      server.on('secureConnection', (socket: TLSSocket) =>
        this.accept(socket, tlsDeadline!.secured(socket), 'tls'),
      );
      server.on('tlsClientError', (err) => opts.log.debug({ err: err.message }, 'TLS handshake failed'));
      this.tcp = server;
    } else {
      this.tcp = createTcpServer(socketOptions, (socket) => this.accept(socket));
    }
    await listenOn(this.tcp, opts.port, opts.host, opts.limits.listenBacklog);
    // EMFILE and friends on accept: logged, never fatal (the cap keeps us below the fd limit).
    this.tcp.on('error', (err) => opts.log.error({ err }, 'listener error'));
    // A connection that never completes its request (an upgrade sent slowly or not at all) is cut at the
    // handshake deadline, counted from the accept like the TCP one (PROTOCOL.md section 1): by
    // cutPendingHttp, and by Node's own request timeouts as a backstop.
    const httpOptions = {
      headersTimeout: handshakeMs,
      requestTimeout: handshakeMs,
      connectionsCheckingInterval: Math.min(1000, Math.max(50, Math.floor(handshakeMs / 10))),
    };
    const webClient = opts.webRoot ? staticFiles(opts.webRoot) : null;
    const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
      if (isEndpointPath(req.url)) {
        res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket', connection: 'upgrade' });
        res.end(`a WebSocket endpoint: upgrade with the subprotocol ${WS_SUBPROTOCOL}\n`);
        return;
      }
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
      if (req.url === '/readyz') {
        void this.readiness().then((notReady) => {
          res.writeHead(notReady ? 503 : 200, { 'content-type': 'application/json' });
          res.end(JSON.stringify(notReady ? { status: 'not ready', reason: notReady } : { status: 'ready' }));
        });
        return;
      }
      if (req.url === '/metrics') {
        void this.metrics.text().then(
          (text) => res.writeHead(200, { 'content-type': this.metrics.contentType }).end(text),
          (err) => {
            opts.log.error({ err }, 'metrics failed');
            res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics failed\n');
          },
        );
        return;
      }
      if (webClient?.(req, res)) return;
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    };
    this.http = tls
      ? createHttpsServer({ ...httpOptions, ...tls }, onRequest)
      : createHttpServer(httpOptions, onRequest);
    this.wss = new WebSocketServer({
      noServer: true,
      WebSocket: SbpWebSocket,
      handleProtocols: selectSubprotocol,
      // Over it ws would close with 1009 on its own; SbpWebSocket answers FRAME_TOO_LARGE and 4002 instead.
      maxPayload: MAX_WS_MESSAGE,
      maxBufferedChunks: MAX_WS_PIECES,
      maxFragments: MAX_WS_PIECES,
      perMessageDeflate: false,
      // Sessions track their connections; ws's own set would add a closure per connection.
      clientTracking: false,
      // A text message is refused whatever it holds (PROTOCOL_VIOLATION, 1003): no need to validate it.
      skipUTF8Validation: true,
    });
    // Over TLS the socket that upgrades is the TLS one: it is tracked from the end of its TLS handshake.
    this.http.on(tls ? 'secureConnection' : 'connection', (socket: Socket) => this.acceptHttp(socket));
    if (tls)
      this.http.on('tlsClientError', (err) => opts.log.debug({ err: err.message }, 'TLS handshake failed'));
    this.http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.upgrade(req, socket as Socket, head),
    );
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
        tls: !!tls,
      },
      'listening',
    );
    return { port, httpPort };
  }

  /** Admission control before any session state is allocated. */
  private accept(socket: Socket, acceptedAt?: number, kind: 'tcp' | 'tls' = 'tcp'): void {
    const refused = this.admission();
    if (refused) {
      socket.on('error', () => {});
      socket.end(this.refusal(refused));
      setTimeout(() => socket.destroy(), this.opts.limits.closeGraceMs).unref();
      return;
    }
    const conn = new TcpConnection(socket, this.batcher, this.opts.limits.writeHighWaterBytes, kind);
    this.sessions.add(new Session(conn, this.ctx, acceptedAt));
  }

  /** SERVER_FULL or SHUTTING_DOWN when a new connection may not have a session, else null. */
  private admission(): ErrorCodeValue | null {
    if (!this.shuttingDown && this.sessions.size < this.maxConnections) return null;
    const code = this.shuttingDown ? ErrorCode.SHUTTING_DOWN : ErrorCode.SERVER_FULL;
    if (code === ErrorCode.SERVER_FULL && this.rejectedFull++ % 1000 === 0) {
      this.opts.log.warn({ max: this.maxConnections, rejected: this.rejectedFull }, 'server full');
    }
    return code;
  }

  /** The ERROR that refuses a connection at admission, with a spread reconnect delay. */
  private refusal(code: ErrorCodeValue): Uint8Array {
    const frame = encodeFrame({
      type: 'ERROR',
      code,
      ref: this.reconnectDelay(),
      message: code === ErrorCode.SERVER_FULL ? 'server is full, retry later' : 'server is shutting down',
    });
    this.metrics.counters.sent(frame);
    return frame;
  }

  /**
   * GET /readyz: null when this process serves (listening, not shutting down, its store answering a
   * probe within READY_PROBE_MS), else why not.
   */
  private async readiness(): Promise<string | null> {
    if (this.shuttingDown) return 'shutting down';
    if (!this.tcp?.listening) return 'not listening';
    const probe = this.opts.store.ping?.();
    if (!probe) return null;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<string>((resolve) => {
      timer = setTimeout(
        () => resolve(`the store did not answer within ${READY_PROBE_MS} ms`),
        READY_PROBE_MS,
      );
    });
    try {
      return await Promise.race([
        probe.then(
          () => null,
          (err: unknown) => `the store is unreachable: ${err instanceof Error ? err.message : String(err)}`,
        ),
        late,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** An HTTP connection: its accept time is kept for the handshake deadline of an upgrade on it. */
  private acceptHttp(socket: Socket, acceptedAt = Date.now()): void {
    if (this.pendingHttp.size >= MAX_PENDING_HTTP) {
      socket.on('error', () => {});
      socket.end(httpResponse(503, 'too many connections in progress, retry later'));
      socket.destroySoon();
      return;
    }
    this.pendingHttp.set(socket, acceptedAt);
    socket.once('close', this.onPendingHttpClose);
    if (this.pendingHttpDeadline.timerSlot < 0) {
      this.wheel.schedule(this.pendingHttpDeadline, acceptedAt + this.opts.limits.handshakeTimeoutMs);
    }
  }

  /**
   * Closes the HTTP connections whose handshake deadline (from their accept) has passed without an
   * upgrade: headersTimeout alone restarts when a request begins, so a client that waits, then trickles
   * its upgrade, would get up to twice the deadline. The map is in accept order: the oldest come first.
   */
  private cutPendingHttp(now: number): void {
    const limit = this.opts.limits.handshakeTimeoutMs;
    for (const [socket, acceptedAt] of this.pendingHttp) {
      if (acceptedAt + limit > now) {
        this.wheel.schedule(this.pendingHttpDeadline, acceptedAt + limit);
        return;
      }
      this.pendingHttp.delete(socket);
      socket.off('close', this.onPendingHttpClose);
      socket.destroy();
    }
  }

  /** The HTTP server's 'upgrade': WebSocket at /sbp with the subprotocol sbp.v1 (PROTOCOL.md section 1). */
  private upgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    if (!this.pendingHttp.has(socket)) {
      // Refused at accept (over MAX_PENDING_HTTP): it already has its 503.
      socket.destroy();
      return;
    }
    if (!isEndpointPath(req.url)) {
      rejectUpgrade(socket, 404, 'not found');
      return;
    }
    if (!offersSubprotocol(req.headers['sec-websocket-protocol'])) {
      rejectUpgrade(socket, 400, `the WebSocket subprotocol ${WS_SUBPROTOCOL} is required`);
      return;
    }
    // Completes the handshake (or answers 400 to a bad one) synchronously: see upgraded().
    this.wss!.handleUpgrade(req, socket, head, this.upgraded);
  }

  /** A WebSocket handshake is complete: admission control, then a session with the rest of its deadline. */
  private readonly upgraded = (ws: SbpWebSocket, req: IncomingMessage): void => {
    const socket = req.socket as Socket;
    const acceptedAt = this.pendingHttp.get(socket) ?? Date.now();
    this.pendingHttp.delete(socket);
    socket.off('close', this.onPendingHttpClose);
    const refused = this.admission();
    if (refused) {
      ws.on('error', () => {});
      ws.send(this.refusal(refused));
      ws.close(CLOSE_ERROR_BASE + refused);
      setTimeout(() => ws.terminate(), this.opts.limits.closeGraceMs).unref();
      return;
    }
    const conn = new WebSocketConnection(ws, socket, this.batcher, this.opts.limits.writeHighWaterBytes);
    this.sessions.add(new Session(conn, this.ctx, acceptedAt));
  };

  /** Stops accepting HTTP connections (health checks and WebSocket upgrades); once. */
  private stopHttp(): Promise<void> {
    this.httpStopped ??= new Promise<void>((resolve) => {
      if (!this.http) return resolve();
      this.http.close(() => resolve());
    });
    return this.httpStopped;
  }

  private reconnectDelay(): number {
    return Math.floor(Math.random() * this.opts.limits.reconnectSpreadMs);
  }

  /**
   * Retention: small bounded batches, yielding to the event loop between them. Every batch of a sweep
   * asks with the time the sweep began, so that the store goes on from where the last batch stopped
   * (what comes due meanwhile waits for the next sweep).
   */
  private startPurgeSweep(): void {
    const interval = this.opts.purgeIntervalMs ?? 60_000;
    if (interval <= 0) return; // another process sweeps this store
    let running = false;
    let now = 0;
    const step = (): void => {
      if (this.shuttingDown) {
        running = false;
        return;
      }
      this.opts.store.purge(now, 500).then(
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
        now = Date.now();
        step();
      }
    }, interval);
    this.purgeTimer.unref();
  }

  get stats(): { connections: number; users: number; closes: Record<string, number> } {
    return {
      connections: this.sessions.size,
      users: this.router.userCount,
      closes: Object.fromEntries(this.metrics.counters.closes),
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
    // WebSocket sessions are in `sessions` too: they get SHUTTING_DOWN below like the TCP ones.
    void this.stopHttp();
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
    const httpStopped = this.stopHttp();
    // The connections not upgraded; the WebSocket ones closed with their sessions in drain().
    this.http?.closeAllConnections();
    await Promise.race([httpStopped, sleep(this.opts.limits.closeGraceMs + 2000)]);
    await this.opts.store.close();
    this.metrics.close();
    this.opts.log.info(this.stats, 'stopped');
  }
}

/** With one worker, a home's announcements go straight to this worker's router. */
function localSink(router: Router): WorkerSink {
  return {
    stored: (_w, inbox, message) => router.stored(inbox, message),
    ephemeral: (_w, user, deliver, except) => router.ephemeral(user, deliver, except),
    replace: (_w, _user, _device, sid) => router.replace(sid),
    presence: (_w, user, presence) => router.presence(user, presence),
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

/** A minimal HTTP/1.1 response written straight to a socket that is then closed. */
function httpResponse(status: number, message: string): string {
  const body = `${message}\n`;
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nconnection: close\r\n` +
    `content-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
}

/** Refuses a WebSocket upgrade with an HTTP status and closes the socket. */
function rejectUpgrade(socket: Socket, status: number, message: string): void {
  socket.on('error', () => {});
  socket.end(httpResponse(status, message));
  socket.destroySoon();
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
