/**
 * The SDK's storage hook in IndexedDB: the last clientMsgId, the processed seq and the unsent SENDs
 * (PROTOCOL.md section 5), in the same database as the message history.
 */
import type { ClientState, ClientStorage } from '../../../src/client/core.js';
import { MESSAGES_STORE, request, SDK_STORE, transaction } from './db.js';

const STATE_KEY = 'state';

export class IdbStorage implements ClientStorage {
  constructor(private readonly db: IDBDatabase) {}

  load(): Promise<ClientState | undefined> {
    return transaction(this.db, [SDK_STORE], 'readonly', (tx) =>
      request(tx.objectStore(SDK_STORE).get(STATE_KEY) as IDBRequest<ClientState | undefined>),
    );
  }

  save(state: ClientState): Promise<void> {
    // The scope takes in the messages too, only for the order: a save that records a seq as processed
    // (or a SEND as pending) commits after the history write of that message, which the app starts
    // first, so the history never misses what the SDK state says is done.
    return transaction(this.db, [SDK_STORE, MESSAGES_STORE], 'readwrite', (tx) => {
      tx.objectStore(SDK_STORE).put(state, STATE_KEY);
    });
  }
}
