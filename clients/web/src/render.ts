// How books, scored lists, their source and their reasons look on the page.
import type { Book, ScoredBook } from "./gen/bookrec/v1/common_pb.js";
import { Source } from "./gen/bookrec/v1/common_pb.js";
import { h } from "./dom.js";

const SOURCES: Record<number, string> = {
  [Source.ALS]: "personal (ALS)",
  [Source.ALS_RERANKED]: "personal (ALS, reranked)",
  [Source.COLD_START]: "cold start",
  [Source.POPULARITY]: "popularity",
  [Source.SUBJECT]: "subject similarity",
  [Source.HYBRID]: "hybrid",
};

export function sourceBadge(source: Source, version: string): HTMLElement {
  return h(
    "p",
    { class: "source", "data-source": Source[source] ?? "UNSPECIFIED" },
    "Answered by: ",
    h("strong", {}, SOURCES[source] ?? "unknown"),
    h("span", { class: "version" }, ` · model ${version}`),
  );
}

export function bookLink(book: Book): HTMLElement {
  return h("a", { href: `#/book/${encodeURIComponent(book.bookId)}` }, book.title || book.bookId);
}

export function byline(book: Book): string {
  const parts = [book.author || "unknown author"];
  if (book.year) parts.push(String(book.year));
  return parts.join(", ");
}

export function scoredList(label: string, items: ScoredBook[], rated: Set<string>): HTMLElement {
  if (items.length === 0) return h("p", { class: "empty" }, "No books to show.");
  return h(
    "ol",
    { class: "results", "aria-label": label },
    items.map((item) => {
      const book = item.book;
      if (!book) return null;
      return h(
        "li",
        { "data-book-id": book.bookId },
        h("span", { class: "rank" }, `${item.rank}.`),
        h(
          "div",
          {},
          bookLink(book),
          rated.has(book.bookId) ? h("span", { class: "tag" }, " (you rated it)") : null,
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
