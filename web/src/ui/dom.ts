/** The few DOM helpers the views share. */

/** The element with this id; the page's skeleton (index.html) always has it. */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`index.html has no #${id}`);
  return found as T;
}

/** A new element with a class and text (text, never HTML: message bodies are untrusted). */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className = '',
  text = '',
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

/** Shows or hides an element and sets its text. */
export function setText(node: HTMLElement, text: string): void {
  node.textContent = text;
  node.hidden = text === '';
}
