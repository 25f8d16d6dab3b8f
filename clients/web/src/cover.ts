// Book covers drawn from the book itself: the catalogue has no images, so each book
// gets a coloured card with its initials (small) or its title and author (large), the
// colour fixed by its id so a book looks the same wherever it is listed.
import { h } from "./dom.js";
import type { Book } from "./gen/bookrec/v1/common_pb.js";

// Words that do not make an initial ("The Name of the Rose" is NR).
const MINOR = new Set(["the", "a", "an", "of", "and", "in", "on", "to", "la", "le", "les", "el", "der", "die", "das"]);

/** Up to two initials of a title's significant words ("?" for none). */
export function initials(title: string): string {
  const words = title.split(/\s+/).filter((w) => /[\p{L}\p{N}]/u.test(w));
  const major = words.filter((w) => !MINOR.has(w.toLowerCase()));
  return (
    (major.length ? major : words)
      .slice(0, 2)
      .map((w) => (/[\p{L}\p{N}]/u.exec(w)?.[0] ?? "").toLocaleUpperCase())
      .join("") || "?"
  );
}

/** A hue in [0, 360) from a string (FNV-1a), stable across visits. */
export function hue(id: string): number {
  let x = 2166136261;
  for (const ch of id) {
    x ^= ch.codePointAt(0) ?? 0;
    x = Math.imul(x, 16777619);
  }
  return (x >>> 0) % 360;
}

/** The cover of ``book``, decorative (the title is always written beside it). */
export function cover(book: Book, size: "small" | "large"): HTMLElement {
  const title = book.title || book.bookId;
  const el =
    size === "small"
      ? h("span", { class: "cover cover-small", "aria-hidden": "true" }, initials(title))
      : h(
          "span",
          { class: "cover cover-large", "aria-hidden": "true" },
          h("span", { class: "cover-title" }, title),
          book.author ? h("span", { class: "cover-author" }, book.author) : null,
        );
  // A CSS variable set through the CSSOM: the page's CSP forbids style attributes.
  el.style.setProperty("--hue", String(hue(book.bookId)));
  return el;
}
