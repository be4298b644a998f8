/**
 * The app's IndexedDB database, one per (user, device): the SDK's state (`sdk`), the message history
 * (`messages`, by conversation) and the conversations (`conversations`: unread count, last message).
 * Everything lives in one database so that one transaction's order relative to another is defined
 * (IndexedDB runs read-write transactions over overlapping stores in the order they were created).
 */

export const SDK_STORE = 'sdk';
export const MESSAGES_STORE = 'messages';
export const CONVERSATIONS_STORE = 'conversations';
/** The `messages` index by conversation id. */
export const BY_CONVERSATION = 'conv';

const VERSION = 1;

export function databaseName(user: string, device: string): string {
  // Ids never hold ':' (PROTOCOL.md section 2), so the name is unambiguous.
  return `switchboard:${user}:${device}`;
}

export function openDatabase(user: string, device: string): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open(databaseName(user, device), VERSION);
    open.onupgradeneeded = () => {
      const db = open.result;
      db.createObjectStore(SDK_STORE);
      db.createObjectStore(MESSAGES_STORE, { keyPath: 'key' }).createIndex(BY_CONVERSATION, 'conv');
      db.createObjectStore(CONVERSATIONS_STORE, { keyPath: 'id' });
    };
    open.onsuccess = () => {
      const db = open.result;
      // A newer version of the app opened in another tab: let it upgrade (this tab reloads later).
      db.onversionchange = () => db.close();
      resolve(db);
    };
    open.onerror = () => reject(open.error ?? new Error('could not open the local database'));
    open.onblocked = () => reject(new Error('the local database is held by an older tab: close it'));
  });
}

/** One request's result. */
export function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error('IndexedDB request failed'));
  });
}

/**
 * Runs `body` in a transaction created synchronously (so its place in the order is fixed at the call)
 * and resolves with the body's result once the transaction has committed. `body` may await requests
 * of this transaction, and nothing else (an await on anything else lets the transaction commit early).
 */
export function transaction<T>(
  db: IDBDatabase,
  stores: string[],
  mode: IDBTransactionMode,
  body: (tx: IDBTransaction) => Promise<T> | T,
): Promise<T> {
  const tx = db.transaction(stores, mode);
  const committed = new Promise<void>((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error ?? new Error('IndexedDB transaction failed'));
    tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'));
  });
  let started: Promise<T>;
  try {
    started = Promise.resolve(body(tx));
  } catch (err) {
    started = Promise.reject(err);
  }
  const result = started.catch((err: unknown) => {
    try {
      tx.abort();
    } catch {
      // already finished
    }
    throw err;
  });
  return Promise.all([result, committed]).then(([value]) => value);
}
