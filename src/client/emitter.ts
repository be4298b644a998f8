/**
 * A tiny typed event emitter (no Node EventEmitter, so browsers can use the SDK as is).
 * A listener that throws does not disturb the emitter or the other listeners: the exception is
 * re-thrown on a fresh task, where the host reports it as uncaught.
 */
// biome-ignore lint/suspicious/noExplicitAny: listener maps are keyed by event name
type Listener = (arg: any) => void;

export class TypedEmitter<Events extends object> {
  private readonly listeners = new Map<keyof Events, Set<Listener>>();

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof Events>(event: K, listener: (arg: Events[K]) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener);
    return () => this.off(event, listener);
  }

  once<K extends keyof Events>(event: K, listener: (arg: Events[K]) => void): () => void {
    const off = this.on(event, (arg) => {
      off();
      listener(arg);
    });
    return off;
  }

  off<K extends keyof Events>(event: K, listener: (arg: Events[K]) => void): void {
    this.listeners.get(event)?.delete(listener);
  }

  listenerCount(event: keyof Events): number {
    return this.listeners.get(event)?.size ?? 0;
  }

  protected emit<K extends keyof Events>(event: K, arg: Events[K]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(arg);
      } catch (err) {
        setTimeout(() => {
          throw err;
        }, 0);
      }
    }
  }
}
