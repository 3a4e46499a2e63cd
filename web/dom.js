/* global document */
// Small DOM helpers the pages share. Plain DOM, no framework.

export const $ = (id) => document.getElementById(id);

/** An element with attributes and children (strings become text, never HTML). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  node.append(...children);
  return node;
}
