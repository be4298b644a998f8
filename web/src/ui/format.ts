/** How names, times and avatars look. */

const clock = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' });
const weekday = new Intl.DateTimeFormat(undefined, { weekday: 'short' });
const shortDate = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short' });
const longDay = new Intl.DateTimeFormat(undefined, { weekday: 'long', day: 'numeric', month: 'long' });

const DAY_MS = 86_400_000;

function startOfDay(t: number): number {
  const d = new Date(t);
  d.setHours(0, 0, 0, 0);
  return d.getTime();
}

/** A message's time of day. */
export function timeOfDay(t: number): string {
  return clock.format(t);
}

/** A conversation's last activity: the time today, the weekday this week, else the date. */
export function shortWhen(t: number, now = Date.now()): string {
  const days = Math.round((startOfDay(now) - startOfDay(t)) / DAY_MS);
  if (days <= 0) return clock.format(t);
  if (days < 7) return weekday.format(t);
  return shortDate.format(t);
}

/** The label of a day separator in a conversation. */
export function dayLabel(t: number, now = Date.now()): string {
  const days = Math.round((startOfDay(now) - startOfDay(t)) / DAY_MS);
  if (days <= 0) return 'Today';
  if (days === 1) return 'Yesterday';
  return longDay.format(t);
}

/** The calendar day of a time (to tell where a separator goes). */
export function dayOf(t: number): number {
  return startOfDay(t);
}

/** One of the avatar colours (.hue-0 … .hue-7), stable per name. */
export function hueClass(name: string): string {
  let h = 0;
  for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
  return `hue-${h % 8}`;
}

/** The avatar letter: a group's first letter after '#', a user's first letter. */
export function initial(name: string): string {
  return (name.startsWith('#') ? name.slice(1, 2) : name.slice(0, 1)).toUpperCase();
}

/** Fills an avatar element for `name`. */
export function paintAvatar(node: HTMLElement, name: string): void {
  node.textContent = initial(name);
  node.className = `avatar ${hueClass(name)}${name.startsWith('#') ? ' group' : ''}`;
}
