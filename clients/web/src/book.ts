// One book: its details, a rating control (RateBook), and Similar books with the mode
// (ALS, subject, hybrid) and the hybrid weight as controls.
import { catalog, feedback, recommender } from "./api.js";
import { h } from "./dom.js";
import type { Book } from "./gen/bookrec/v1/common_pb.js";
import { SimilarMode } from "./gen/bookrec/v1/recommender_pb.js";
import { cover } from "./cover.js";
import { byline, loadingState, problemState, scoredList, settle, sourceBadge, updating } from "./render.js";
import { session } from "./session.js";
import { Section } from "./status.js";

const bookSection = new Section("book");
const similarSection = new Section("similar");
const rateSection = new Section("rate");
let mode: SimilarMode = SimilarMode.ALS;
let weight = 0.5;

export function renderBook(main: HTMLElement, bookId: string, onRated: () => void): void {
  const details = h("div", { id: "book-details" }, loadingState("the book", 1));
  main.replaceChildren(details);
  void bookSection.run(
    () => catalog.getBook({ bookId }),
    (reply) => {
      if (reply.book) showBook(main, reply.book, onRated);
    },
    (p) =>
      details.replaceChildren(
        h("h1", {}, "Book"),
        problemState(p, "this book"),
        h("p", {}, h("a", { href: "#/" }, "Back to the catalogue")),
      ),
  );
}

function showBook(main: HTMLElement, book: Book, onRated: () => void): void {
  const subjects = book.subjects.map((s) => s.name).join(", ");
  const facts = h(
    "dl",
    { class: "facts" },
    h("dt", {}, "Subjects"),
    h("dd", {}, subjects || "none"),
    book.series ? [h("dt", {}, "Series"), h("dd", {}, `${book.series} #${book.seriesVolume}`)] : null,
    h("dt", {}, "Ratings"),
    h("dd", {}, `${book.ratingCount}` + (book.meanRating ? `, mean ${book.meanRating.toFixed(1)}` : "")),
  );
  const similar = h("div", { id: "similar-results", "aria-live": "polite" }, loadingState("similar books"));
  main.replaceChildren(
    h(
      "article",
      { id: "book-details", "data-book-id": book.bookId },
      cover(book, "large"),
      h(
        "div",
        { class: "book-text" },
        h("h1", {}, book.title || book.bookId),
        h("p", { class: "by" }, byline(book)),
        facts,
        rateForm(book, onRated),
      ),
    ),
    h(
      "section",
      { class: "panel", "aria-labelledby": "similar-title" },
      h("h2", { id: "similar-title" }, "Similar books"),
      similarControls(book.bookId, similar),
      similar,
    ),
  );
  loadSimilar(book.bookId, similar);
}

function rateForm(book: Book, onRated: () => void): HTMLElement {
  const select = h(
    "select",
    { id: "rating" },
    h("option", { value: "0" }, "read it (no score)"),
    Array.from({ length: 10 }, (_, i) => h("option", { value: String(10 - i) }, String(10 - i))),
  );
  select.value = "8";
  const done = h("span", { id: "rate-status", role: "status" });
  const form = h(
    "form",
    { class: "rate" },
    h("label", { for: "rating" }, "Your rating"),
    select,
    h("button", { type: "submit", id: "rate-button", class: "primary" }, "Rate"),
    done,
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const rating = Number(select.value);
    done.textContent = "Saving…";
    void rateSection.run(
      () => feedback.rateBook({ userId: session.reader(), bookId: book.bookId, rating }),
      () => {
        session.addRated({ bookId: book.bookId, title: book.title, rating });
        done.textContent = rating ? `Rated ${rating}.` : "Marked as read.";
        onRated();
      },
      (p) => {
        // A missing key is said in the banner; here only that nothing was saved.
        done.textContent = p.kind === "auth" ? "Not saved." : p.message;
      },
    );
  });
  return form;
}

function similarControls(bookId: string, out: HTMLElement): HTMLElement {
  const modes: [SimilarMode, string][] = [
    [SimilarMode.ALS, "ALS (co-reading)"],
    [SimilarMode.SUBJECT, "Subject"],
    [SimilarMode.HYBRID, "Hybrid"],
  ];
  const slider = h("input", {
    id: "hybrid-weight",
    type: "range",
    min: 0,
    max: 1,
    step: 0.1,
    value: weight,
    disabled: mode !== SimilarMode.HYBRID,
  });
  const shown = h("output", { for: "hybrid-weight", id: "hybrid-weight-value" }, weight.toFixed(1));
  slider.addEventListener("change", () => {
    weight = Number(slider.value);
    loadSimilar(bookId, out);
  });
  slider.addEventListener("input", () => {
    shown.textContent = Number(slider.value).toFixed(1);
  });
  const radios = modes.map(([value, label]) => {
    const id = `mode-${SimilarMode[value].toLowerCase()}`;
    const input = h("input", { type: "radio", name: "mode", id, value: String(value), checked: value === mode });
    input.addEventListener("change", () => {
      mode = value;
      slider.disabled = mode !== SimilarMode.HYBRID;
      loadSimilar(bookId, out);
    });
    return h("span", { class: "choice" }, input, h("label", { for: id }, label));
  });
  return h(
    "div",
    { class: "controls" },
    h("fieldset", {}, h("legend", {}, "Similar by"), radios),
    h(
      "div",
      { class: "slider" },
      h("div", { class: "slider-head" }, h("label", { for: "hybrid-weight" }, "Hybrid: weight of co-reading"), shown),
      slider,
    ),
  );
}

function loadSimilar(bookId: string, out: HTMLElement): void {
  const rated = new Set(session.rated().map((r) => r.bookId));
  updating(out);
  void similarSection.run(
    () =>
      recommender.similar({
        bookId,
        k: 10,
        mode,
        weight: mode === SimilarMode.HYBRID ? weight : undefined,
        explain: session.explain(),
      }),
    (reply) =>
      settle(
        out,
        sourceBadge("similar", reply.source, reply.modelVersion),
        scoredList("Similar books", reply.items, rated),
      ),
    (p) => settle(out, problemState(p, "similar books")),
  );
}

export function leaveBook(): void {
  bookSection.cancel();
  similarSection.cancel();
}
