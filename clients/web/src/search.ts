// Search and browse the catalogue, a page at a time (SearchBooks page tokens).
import { catalog } from "./api.js";
import { h } from "./dom.js";
import type { SearchBooksResponse } from "./gen/bookrec/v1/catalog_pb.js";
import { cover } from "./cover.js";
import { bookLink, byline, emptyState, loadingState, problemState } from "./render.js";
import { Section } from "./status.js";

const PAGE_SIZE = 10;
const section = new Section("search");
// tokens[i] opens page i + 1 of ``query``; kept while the person pages back and forth.
let query = "";
let tokens: string[] = [""];
let page = 0;

export function renderSearch(main: HTMLElement, q: string): void {
  if (q !== query) {
    query = q;
    tokens = [""];
    page = 0;
  }
  const input = h("input", {
    id: "search-q",
    type: "search",
    name: "q",
    value: query,
    placeholder: "title or author",
    autocomplete: "off",
  });
  const form = h(
    "form",
    { role: "search", class: "search" },
    h("label", { for: "search-q", class: "visually-hidden" }, "Search books"),
    input,
    h("button", { type: "submit", class: "primary" }, "Search"),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    window.location.hash = `#/search?q=${encodeURIComponent(input.value.trim())}`;
  });
  const results = h("div", { id: "search-results", "aria-live": "polite" }, loadingState("books", 4));
  const title = query ? `Books matching “${query}”` : "Browse the catalogue";
  main.replaceChildren(h("h1", {}, title), form, results);
  load(results);
}

function load(out: HTMLElement): void {
  void section.run(
    () => catalog.searchBooks({ query, pageSize: PAGE_SIZE, pageToken: tokens[page] ?? "" }),
    (reply) => show(out, reply),
    (p) => out.replaceChildren(problemState(p, "the books")),
  );
}

function show(out: HTMLElement, reply: SearchBooksResponse): void {
  if (reply.nextPageToken) tokens[page + 1] = reply.nextPageToken;
  const pages = Math.max(1, Math.ceil(reply.totalSize / PAGE_SIZE));
  const go = (delta: number) => () => {
    page += delta;
    out.replaceChildren(loadingState("books", 4));
    load(out);
  };
  const list = reply.books.length
    ? h(
        "ul",
        { class: "books", "aria-label": "Search results" },
        reply.books.map((b) =>
          h(
            "li",
            { "data-book-id": b.bookId },
            cover(b, "small"),
            h(
              "div",
              { class: "entry" },
              bookLink(b),
              h("div", { class: "by" }, byline(b)),
              h("div", { class: "meta" }, ratings(b.ratingCount, b.meanRating)),
            ),
          ),
        ),
      )
    : emptyState(query ? `No book matches “${query}”. Try a shorter word or an author's name.` : "The catalogue is empty.");
  const nav = h(
    "nav",
    { class: "pager", "aria-label": "Pages" },
    h("button", { type: "button", id: "prev-page", disabled: page === 0, onclick: go(-1) }, "Previous"),
    h("span", { id: "page-info" }, `Page ${page + 1} of ${pages} · ${reply.totalSize} books`),
    h(
      "button",
      { type: "button", id: "next-page", disabled: !reply.nextPageToken, onclick: go(1) },
      "Next",
    ),
  );
  out.replaceChildren(list, nav);
}

function ratings(count: bigint, mean: number): string {
  const n = `${count.toLocaleString("en")} rating${count === 1n ? "" : "s"}`;
  return mean ? `${n} · mean ${mean.toFixed(1)}` : n;
}

export function leaveSearch(): void {
  section.cancel();
}
