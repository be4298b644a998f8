/**
 * A worker process: one event loop serving its share of the connections (handed to it by the primary),
 * home to the users of the shards it owns, linked to the other workers by the bus. It takes its orders
 * from the primary over the cluster IPC channel: listen, drain, exit.
 */
import type { Logger } from 'pino';
import { setFrameAllocator } from '../protocol/index.js';
import { Home } from '../server/home.js';
import type { Limits } from '../server/limits.js';
import { type ServerOptions, SwitchboardServer } from '../server/server.js';
import type { Durability, InboxCaps, InboxStore } from '../store/inbox-store.js';
import { RedisInboxStore } from '../store/redis.js';
import { SqliteInboxStore } from '../store/sqlite.js';
import { Bus } from './bus.js';
import { ClusterHomes, shardsOfWorker } from './cluster-homes.js';
import { defaultNodeName, Fleet } from './fleet.js';
import type { PrimaryMessage, WorkerMessage } from './messages.js';

export interface WorkerConfig {
  index: number;
  workers: number;
  shardCount: number;
  runDir: string;
  dataDir: string;
  durability: Durability;
  /** `redis://…` or `redis-cluster://…` for a Redis store; null for SQLite in dataDir (the default). */
  storeUrl: string | null;
  limits: Limits;
  server: Omit<ServerOptions, 'store' | 'homes' | 'worker' | 'limits' | 'log' | 'nodeName'>;
  /** The machine's node name ('' on one machine): WELCOME's node is `w<k>` or `<node>.w<k>`. */
  nodeName: string;
}

function tell(message: WorkerMessage): void {
  process.send?.(message);
}

/**
 * Opens this worker's SQLite shards and says how long it took when that was long: a file of an older
 * schema is migrated in place (2.5 s per million messages), and each shard's live index is rebuilt from
 * its messages (0.85 s per million waiting).
 */
async function openSqliteStore(cfg: WorkerConfig, caps: InboxCaps, log: Logger): Promise<SqliteInboxStore> {
  const shards = shardsOfWorker(cfg.index, cfg.workers, cfg.shardCount);
  const started = performance.now();
  const store = await SqliteInboxStore.open({
    dir: cfg.dataDir,
    shardCount: cfg.shardCount,
    shards,
    durability: cfg.durability,
    caps,
  });
  const seconds = (performance.now() - started) / 1000;
  if (seconds >= 1)
    log.info({ shards, seconds, liveMessages: store.liveMessages }, 'opened the inbox shards');
  return store;
}

export async function runWorker(cfg: WorkerConfig, baseLog: Logger): Promise<void> {
  const log = baseLog.child({ worker: cfg.index });
  // A worker encodes every frame it sends: from Node's Buffer pool, not an allocation each.
  setFrameAllocator((size) => Buffer.allocUnsafe(size));
  const caps = {
    maxMessages: cfg.limits.inboxMaxMessages,
    maxBytes: cfg.limits.inboxMaxBytes,
    retentionMs: cfg.limits.retentionMs,
  };
  // SQLite: each worker opens the shard files of the users it is home to. Redis: every worker reaches
  // every inbox, but users keep their home worker (the directory, presence and groups live there), and
  // one worker runs the retention sweep of the shared keyspace.
  const store: InboxStore = cfg.storeUrl
    ? await RedisInboxStore.open({ url: cfg.storeUrl, caps, durability: cfg.durability, log })
    : await openSqliteStore(cfg, caps, log);
  const sweeps = !cfg.storeUrl || cfg.index === 0;
  let homes: ClusterHomes | null = null;
  const workerName = `w${cfg.index + 1}`;
  // On Redis this node is one of a fleet (perhaps of one): named, registered, subscribed.
  const nodeName = cfg.storeUrl ? cfg.nodeName || defaultNodeName(cfg.server.port) : cfg.nodeName;
  const fleet = cfg.storeUrl
    ? await Fleet.open({
        url: cfg.storeUrl,
        node: nodeName,
        worker: cfg.index,
        workers: cfg.workers,
        shardCount: cfg.shardCount,
        log,
      })
    : null;
  const server = new SwitchboardServer({
    ...cfg.server,
    purgeIntervalMs: sweeps ? cfg.server.purgeIntervalMs : 0,
    limits: cfg.limits,
    store,
    log,
    worker: cfg.index,
    nodeName: nodeName ? `${nodeName}.${workerName}` : workerName,
    homes: (router) => {
      homes = new ClusterHomes(cfg.index, cfg.workers, cfg.shardCount, null, router);
      const home = new Home(store, homes.sink);
      home.routeVia(homes);
      homes.attachHome(home);
      if (fleet) {
        home.joinFleet(fleet);
        const cluster = homes;
        fleet.handler = { notice: (n) => home.fleetNotice(n), resubscribed: () => cluster.catchUp() };
      }
      return homes;
    },
  });
  const bus = new Bus(cfg.index, cfg.workers, cfg.runDir, homes!, log);
  homes!.bus = bus;
  await bus.start();

  // The primary orchestrates shutdown; a terminal's Ctrl-C reaches the whole process group.
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => {});
  // Without the primary there is no one to hand us connections or to restart us.
  process.on('disconnect', () => process.exit(0));
  process.on('message', (msg: PrimaryMessage) => {
    switch (msg.type) {
      case 'listen':
        server.listen().then(
          (ports) => tell({ type: 'listening', ...ports }),
          (err) => {
            log.fatal({ err }, 'cannot listen');
            process.exit(1);
          },
        );
        return;
      case 'drain':
        server.drain().then(() => tell({ type: 'drained' }));
        return;
      case 'exit':
        // Peers first queue what they would send us for our successor, then the shards commit and close.
        bus
          .retire()
          .then(() => server.close())
          .then(() => bus.close())
          .then(() => fleet?.close())
          .then(
            () => process.exit(0),
            (err) => {
              log.error({ err }, 'exit failed');
              process.exit(1);
            },
          );
        return;
    }
  });
  tell({ type: 'prepared' });
}
