/**
 * Payload conventions of Switchboard's own clients (PROTOCOL.md section 8): a chat message is its UTF-8
 * text, a typing indicator is an ephemeral SEND of the text `typing`, and a payload that is not valid
 * UTF-8 is shown as hex.
 */

export const TYPING = 'typing';

/** Most bytes shown in hex; a longer binary payload is cut with an ellipsis. */
const HEX_SHOWN = 48;

export interface Body {
  body: string;
  binary: boolean;
}

/** What to show for a payload (`text` is the SDK's strict UTF-8 decoding, null when invalid). */
export function displayBody(payload: Uint8Array, text: string | null): Body {
  if (text !== null) return { body: text, binary: false };
  const shown = Array.from(payload.subarray(0, HEX_SHOWN), (b) => b.toString(16).padStart(2, '0'));
  return { body: shown.join(' ') + (payload.length > HEX_SHOWN ? ' …' : ''), binary: true };
}
