// How books, scored lists, their source and their reasons look on the page, and the
// states a part of the page can be in while it has no result: loading, empty, error.
import type { Problem } from "./api.js";
import type { Book, ScoredBook } from "./gen/bookrec/v1/common_pb.js";
import { Source } from "./gen/bookrec/v1/common_pb.js";
import { h } from "./dom.js";
import { cover } from "./cover.js";

/** Which RPC answered: the same Source reads differently for each (ALS for Similar is
 *  co-reading between books, for Recommend the reader's own ratings). */
export type Answer = "recommend" | "similar" | "coldStart";

const SOURCES: Record<Answer, Partial<Record<Source, string>>> = {
  recommend: {
    [Source.ALS]: "your ratings (ALS)",
    [Source.ALS_RERANKED]: "your ratings (ALS, reranked)",
    [Source.COLD_START]: "subjects of the books you rated",
    [Source.POPULARITY]: "popularity",
    [Source.HYBRID]: "your ratings and popularity",
  },
  similar: {
    [Source.ALS]: "co-reading (ALS)",
    [Source.SUBJECT]: "shared subjects",
    [Source.HYBRID]: "hybrid: co-reading and subjects",
  },
  coldStart: {
    [Source.COLD_START]: "your subjects and popularity",
    [Source.POPULARITY]: "popularity",
  },
};

/** The source's name for this RPC (read from the reply's Source enum). */
export function sourceName(answer: Answer, source: Source): string {
  return SOURCES[answer][source] ?? (Source[source] ?? "unknown").toLowerCase().replace(/_/g, " ");
}

export function sourceBadge(answer: Answer, source: Source, version: string): HTMLElement {
  return h(
    "p",
    { class: "source", "data-source": Source[source] ?? "UNSPECIFIED" },
    h("span", { class: "source-label" }, "Answered by"),
    " ",
    h("strong", {}, sourceName(answer, source)),
    h("span", { class: "version", title: "model version" }, version),
  );
}

export function bookLink(book: Book): HTMLElement {
  return h("a", { class: "title", href: `#/book/${encodeURIComponent(book.bookId)}` }, book.title || book.bookId);
}

export function byline(book: Book): string {
  const parts = [book.author || "unknown author"];
  if (book.year) parts.push(String(book.year));
  return parts.join(", ");
}

export function scoredList(label: string, items: ScoredBook[], rated: Set<string>): HTMLElement {
  if (items.length === 0) return emptyState("No books to show here yet.");
  return h(
    "ol",
    { class: "results", "aria-label": label },
    items.map((item) => {
      const book = item.book;
      if (!book) return null;
      return h(
        "li",
        { "data-book-id": book.bookId },
        h("span", { class: "rank", "aria-hidden": "true" }, String(item.rank)),
        cover(book, "small"),
        h(
          "div",
          { class: "entry" },
          bookLink(book),
          rated.has(book.bookId) ? h("span", { class: "tag" }, "you rated it") : null,
          h("div", { class: "by" }, byline(book)),
          item.reasons.length
            ? h(
                "ul",
                { class: "reasons", "aria-label": "Why" },
                item.reasons.map((r) => h("li", {}, r.text)),
              )
            : null,
        ),
      );
    }),
  );
}

export function message(text: string, kind = "note"): HTMLElement {
  return h("p", { class: kind, role: kind === "error" ? "alert" : undefined }, text);
}

/** What a placeholder looks like: book rows (cover and two lines) or subject chips. */
export type Shape = "rows" | "chips";

function outline(count: number, shape: Shape): HTMLElement[] {
  if (shape === "chips")
    return [
      h(
        "div",
        { class: "skeleton-chips", "aria-hidden": "true" },
        Array.from({ length: count }, () => h("span", { class: "skeleton chip-shape" })),
      ),
    ];
  return Array.from({ length: count }, () =>
    h(
      "div",
      { class: "skeleton-row", "aria-hidden": "true" },
      h("span", { class: "skeleton cover-small" }),
      h("span", { class: "skeleton-lines" }, h("span", { class: "skeleton line" }), h("span", { class: "skeleton line short" })),
    ),
  );
}

/** Placeholders shaped like the result to come, while it loads. */
export function loadingState(what: string, count = 3, shape: Shape = "rows"): HTMLElement {
  return h(
    "div",
    { class: "state loading", role: "status", "aria-busy": "true" },
    h("span", { class: "visually-hidden" }, `Loading ${what}…`),
    outline(count, shape),
  );
}

export function emptyState(text: string): HTMLElement {
  return h("div", { class: "state empty" }, h("p", {}, text));
}

/** Where a result would be, when its call failed. A missing or refused key is said
 *  once, in the banner (status.ts): here only a still outline of what will show. */
export function problemState(p: Problem, what: string, shape: Shape = "rows"): HTMLElement {
  if (p.kind === "auth")
    return h("div", { class: "state locked", "aria-hidden": "true" }, outline(shape === "chips" ? 8 : 2, shape));
  return h(
    "div",
    { class: "state error", role: "alert", "data-kind": p.kind },
    h("p", { class: "state-title" }, `Could not load ${what}`),
    h("p", { class: "state-detail" }, p.message),
  );
}

/** Marks a result area as updating: its last result stays, dimmed, until the next. */
export function updating(out: HTMLElement): void {
  out.setAttribute("aria-busy", "true");
}

/** Shows ``children`` in a result area and ends its updating state. */
export function settle(out: HTMLElement, ...children: Node[]): void {
  out.removeAttribute("aria-busy");
  out.replaceChildren(...children);
}
