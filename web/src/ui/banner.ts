/**
 * The banner over the app while messages cannot flow: the browser is offline, the connection is being
 * made again, or another window took this device. It offers the one action that helps, if any.
 */
import type { Link } from '../session.js';

export interface BannerState {
  link: Link;
  /** navigator.onLine: false when the browser knows it has no network. */
  online: boolean;
}

interface BannerContent {
  text: string;
  action?: string;
}

function content({ link, online }: BannerState): BannerContent | null {
  if (link === 'replaced')
    return { text: 'Switchboard is open in another window on this device.', action: 'Use here' };
  if (link === 'stopped') return { text: 'Disconnected.', action: 'Reconnect' };
  if (!online) return { text: "You're offline. Messages you write are sent when you're back." };
  if (link === 'reconnecting') return { text: "Can't reach the server. Retrying…", action: 'Retry now' };
  // 'connecting' shows nothing: a connection that works takes a moment, and one that fails turns into
  // 'reconnecting'.
  return null;
}

export class Banner {
  constructor(
    private readonly root: HTMLElement,
    private readonly text: HTMLElement,
    private readonly button: HTMLButtonElement,
    onAction: () => void,
  ) {
    button.addEventListener('click', onAction);
  }

  show(state: BannerState | null): void {
    const c = state && content(state);
    this.root.hidden = !c;
    if (!c) return;
    this.text.textContent = c.text;
    this.button.hidden = !c.action;
    this.button.textContent = c.action ?? '';
  }
}
