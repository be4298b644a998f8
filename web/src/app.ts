/**
 * The app: sign-in, then the conversations and the open conversation (two panes on a wide screen, one
 * at a time on a phone). The open conversation is in the URL (`#/c/<id>`), so the back button and a
 * reload keep the user where they were.
 */
import type { SwitchboardError } from '../../src/client/core.js';
import {
  type Credentials,
  defaultDevice,
  forget,
  ID_PATTERN,
  remember,
  rememberedCredentials,
} from './credentials.js';
import { pageEndpoint, Session } from './session.js';
import type { Change, Conversation } from './store/history.js';
import { Banner } from './ui/banner.js';
import { ConversationList } from './ui/conversation-list.js';
import { byId, setText } from './ui/dom.js';
import { paintAvatar, shortWhen } from './ui/format.js';
import { MessageLog } from './ui/message-log.js';
import { SignInForm } from './ui/sign-in.js';

/** How long a new sign-in waits for the server's verdict before going in anyway (offline start), ms. */
const SIGN_IN_WAIT_MS = 6_000;
const ROUTE_PREFIX = '#/c/';
const ADDRESS_PATTERN = new RegExp(`^#?${ID_PATTERN.source.slice(1, -1)}$`);

export class App {
  private session: Session | null = null;
  /** The chat is on screen (a fatal error then signs out; before, the sign-in form reports it). */
  private chatShown = false;
  private openId: string | null = null;
  /** This page moved from the list to a conversation, so "back" can go back in history. */
  private navigated = false;

  private readonly signIn = new SignInForm((c) => this.enter(c, true));
  private readonly chat = byId('chat');
  private readonly list = new ConversationList(byId('conversation-list'), byId('no-conversations'), (id) =>
    this.navigate(id),
  );
  private readonly log = new MessageLog(byId('messages'));
  private readonly banner = new Banner(
    byId('banner'),
    byId('banner-text'),
    byId<HTMLButtonElement>('banner-action'),
    () => this.session?.reconnectNow(),
  );
  private readonly toInput = byId<HTMLInputElement>('to');
  private readonly toError = byId('to-error');
  private readonly message = byId<HTMLInputElement>('message');
  private readonly sendError = byId('send-error');
  private readonly typing = byId('typing');
  private readonly peerName = byId('peer-name');
  private readonly peerStatus = byId('peer-status');

  constructor() {
    byId('sign-out').addEventListener('click', () => this.signOut(''));
    byId('back').addEventListener('click', () => this.back());
    byId<HTMLFormElement>('to-form').addEventListener('submit', (event) => {
      event.preventDefault();
      this.openFromInput();
    });
    byId<HTMLFormElement>('composer').addEventListener('submit', (event) => {
      event.preventDefault();
      this.sendFromInput();
    });
    this.message.addEventListener('input', () => {
      if (this.openId && this.message.value.trim()) this.session?.typed(this.openId);
    });
    window.addEventListener('hashchange', () => this.route());
    window.addEventListener('online', () => this.onNetwork());
    window.addEventListener('offline', () => this.onNetwork());
    document.addEventListener('visibilitychange', () => this.onVisibility());
  }

  /** Goes straight back in with the remembered sign-in, else shows the form. */
  start(): void {
    const remembered = rememberedCredentials();
    if (remembered) this.enter(remembered, false);
    else this.signIn.show({ device: defaultDevice() });
  }

  // ------------------------------------------------------------------ signing in and out

  private async enter(credentials: Credentials, fresh: boolean): Promise<void> {
    if (fresh) this.signIn.setBusy(true);
    let session: Session;
    try {
      session = await Session.open(credentials, pageEndpoint(location));
    } catch (err) {
      this.signIn.show(credentials, `This browser's storage cannot be opened: ${(err as Error).message}`);
      return;
    }
    this.session = session;
    session.on('change', (c) => session === this.session && this.onChange(c));
    session.on('typing', (conv) => session === this.session && conv === this.openId && this.showTyping());
    session.on('presence', (p) => session === this.session && p.user === this.openId && this.showPeer());
    session.on('link', () => {
      if (session !== this.session) return;
      this.showBanner();
      this.showPeer();
    });
    session.on('fatal', (err) => session === this.session && this.onFatal(err));
    const started = session.start();
    if (fresh) {
      // Wait for the server's verdict on the token, so a wrong one is told here; a server out of reach
      // does not keep the user out (the token is checked when it answers).
      const refused = await Promise.race([
        started.then(
          () => null,
          (err: Error) => err,
        ),
        new Promise<null>((resolve) => setTimeout(() => resolve(null), SIGN_IN_WAIT_MS)),
      ]);
      if (refused) {
        this.session = null;
        await session.close();
        this.signIn.show(credentials, signInError(credentials, refused as SwitchboardError));
        return;
      }
    }
    remember(credentials);
    await this.showChat(session);
  }

  private async showChat(session: Session): Promise<void> {
    this.signIn.hide();
    paintAvatar(byId('me-avatar'), session.user);
    byId('me-name').textContent = session.user;
    byId('me-device').textContent = session.device;
    this.list.reset(await session.history.conversations());
    this.chat.hidden = false;
    this.chatShown = true;
    this.showBanner();
    this.updateTitle();
    this.route();
  }

  private async signOut(message: string): Promise<void> {
    const session = this.session;
    if (!session) return;
    this.session = null;
    this.chatShown = false;
    forget();
    this.closeConversation();
    this.chat.hidden = true;
    this.banner.show(null);
    this.updateTitle();
    if (location.hash) history.replaceState(null, '', location.pathname + location.search);
    this.signIn.show({ user: session.user, device: session.device }, message);
    await session.close();
  }

  private onFatal(error: SwitchboardError): void {
    // Before the chat is shown, enter() reports it on the form.
    if (!this.chatShown) return;
    if (error.codeName === 'SESSION_REPLACED' || error.codeName === 'STORAGE') return; // the banner offers a way back
    this.signOut(signInError(this.session!.credentials, error));
  }

  // ------------------------------------------------------------------ conversations

  private openFromInput(): void {
    const to = this.toInput.value.trim();
    if (!ADDRESS_PATTERN.test(to)) {
      setText(this.toError, to ? `"${to}" is not a user name or #group.` : 'Type a user name or #group.');
      return;
    }
    setText(this.toError, '');
    this.toInput.value = '';
    if (to.startsWith('#') && this.session) {
      this.session.join(to).catch((err: SwitchboardError) => {
        if (this.openId === to) setText(this.sendError, `Could not join ${to} (${err.codeName}).`);
      });
    }
    this.navigate(to);
  }

  private navigate(id: string): void {
    const hash = ROUTE_PREFIX + encodeURIComponent(id);
    if (location.hash === hash) {
      this.route();
      return;
    }
    this.navigated = this.openId === null;
    location.hash = hash;
  }

  private back(): void {
    if (this.navigated) {
      history.back();
      return;
    }
    history.replaceState(null, '', location.pathname + location.search);
    this.route();
  }

  /** Shows what the URL names: a conversation, or the list. */
  private route(): void {
    if (!this.chatShown) return;
    const id = location.hash.startsWith(ROUTE_PREFIX)
      ? decodeURIComponent(location.hash.slice(ROUTE_PREFIX.length))
      : '';
    if (ADDRESS_PATTERN.test(id)) this.openConversation(id);
    else this.closeConversation();
  }

  private async openConversation(id: string): Promise<void> {
    const session = this.session!;
    const switching = id !== this.openId;
    this.openId = id;
    session.viewing = document.hidden ? null : id;
    this.chat.classList.add('open');
    this.list.setOpen(id);
    paintAvatar(byId('peer-avatar'), id);
    this.peerName.textContent = id;
    this.showPeer();
    this.showTyping();
    if (switching) {
      setText(this.sendError, '');
      this.message.value = '';
      // Rows recorded while the history loads are kept (show() merges them with what it loads).
      this.log.show(id, []);
    }
    session.watchPeer(id);
    if (matchMedia('(pointer: fine)').matches) this.message.focus();
    const [conversation, messages] = await Promise.all([
      session.history.open(id),
      session.history.messages(id),
    ]);
    this.onRead(session, conversation);
    if (session === this.session && this.openId === id) this.log.show(id, messages);
  }

  private closeConversation(): void {
    this.openId = null;
    this.navigated = false;
    if (this.session) {
      this.session.viewing = null;
      this.session.watchPeer(null);
    }
    this.chat.classList.remove('open');
    this.list.setOpen(null);
    this.log.clear();
  }

  private onChange({ message, conversation }: Change): void {
    this.list.upsert(conversation);
    this.log.upsert(message);
    this.updateTitle();
  }

  // ------------------------------------------------------------------ writing

  private sendFromInput(): void {
    const session = this.session;
    const conv = this.openId;
    const text = this.message.value;
    if (!session || !conv || !text.trim()) return;
    this.message.value = '';
    setText(this.sendError, '');
    session.send(conv, text).catch((err: SwitchboardError) => {
      this.message.value ||= text;
      setText(this.sendError, sendErrorText(err));
    });
  }

  // ------------------------------------------------------------------ status lines

  private showTyping(): void {
    const who = this.openId && this.session ? this.session.typing.who(this.openId) : [];
    this.typing.textContent =
      who.length === 0 ? '' : who.length === 1 ? `${who[0]} is typing…` : `${who.join(' and ')} are typing…`;
  }

  private showPeer(): void {
    const id = this.openId;
    const session = this.session;
    if (!id || !session) return;
    let status = '';
    if (id.startsWith('#')) status = 'group';
    else if (id === session.user) status = 'your notes';
    else {
      // Unknown until the server sends PRESENCE (servers without presence never do).
      const p = session.presenceOf(id);
      if (p?.online) status = 'online';
      else if (p) status = p.since ? `last seen ${shortWhen(p.since)}` : 'offline';
    }
    this.peerStatus.textContent = status;
    this.peerStatus.className = status === 'online' ? 'online' : '';
  }

  private showBanner(): void {
    if (!this.session || !this.chatShown) return;
    this.banner.show({ link: this.session.link, online: navigator.onLine });
  }

  private updateTitle(): void {
    const unread = this.session ? this.list.unread : 0;
    document.title = unread ? `(${unread}) Switchboard` : 'Switchboard';
  }

  private onNetwork(): void {
    this.showBanner();
    if (navigator.onLine) this.session?.wake();
  }

  private onVisibility(): void {
    const session = this.session;
    if (!session) return;
    session.viewing = document.hidden ? null : this.openId;
    if (document.hidden) return;
    session.wake();
    // What arrived in the open conversation while the page was hidden has now been seen.
    if (this.openId) session.history.open(this.openId).then((c) => this.onRead(session, c));
  }

  private onRead(session: Session, conversation: Conversation): void {
    if (session !== this.session) return;
    this.list.upsert(conversation);
    this.updateTitle();
  }
}

function signInError(credentials: Credentials, error: SwitchboardError): string {
  switch (error.codeName) {
    case 'UNAUTHORIZED':
      return credentials.token
        ? `Sign-in failed: the server did not accept this token for "${credentials.user}". Make a new one with: switchboard token ${credentials.user}`
        : `Sign-in failed: this server needs a token for "${credentials.user}". Make one with: switchboard token ${credentials.user}`;
    case 'UNSUPPORTED_VERSION':
      return 'Sign-in failed: this server speaks another version of the protocol.';
    default:
      return `Sign-in failed: ${error.message}`;
  }
}

function sendErrorText(error: SwitchboardError): string {
  switch (error.codeName) {
    case 'PAYLOAD_TOO_LARGE':
      return 'This message is too long to send.';
    case 'INVALID_ADDRESS':
      return 'Messages cannot be sent to this address.';
    default:
      return `Not sent: ${error.message}`;
  }
}
