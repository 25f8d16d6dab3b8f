// The "For you" panel: Recommend for a reader who rated books here (refreshed after
// every rating, never listing what they rated), and ColdStart from favourite subjects
// and a popularity slider for one who rated nothing.
import { catalog, recommender } from "./api.js";
import { h } from "./dom.js";
import type { Subject } from "./gen/bookrec/v1/common_pb.js";
import { message, scoredList, sourceBadge } from "./render.js";
import { session } from "./session.js";
import { Section } from "./status.js";

const recSection = new Section("recommend");
const subjectsSection = new Section("subjects");
const coldSection = new Section("cold-start");
const favourites = new Set<string>();
let popularity: number | undefined; // unset: the model's own default
let subjects: Subject[] = [];

export function renderForYou(aside: HTMLElement): void {
  const rated = session.rated();
  const title = h("h2", { id: "for-you-title" }, "For you");
  const out = h("div", { id: "for-you-results", "aria-live": "polite" }, message("Loading…"));
  if (rated.length) {
    coldSection.cancel();
    const list = h(
      "ul",
      { class: "rated", "aria-label": "You rated" },
      rated.map((r) =>
        h("li", { "data-book-id": r.bookId }, h("a", { href: `#/book/${encodeURIComponent(r.bookId)}` }, r.title), ` · ${r.rating || "read"}`),
      ),
    );
    aside.replaceChildren(title, h("h3", {}, "You rated"), list, h("h3", {}, "Recommended"), out);
    const exclude = new Set(rated.map((r) => r.bookId));
    void recSection.run(
      () => recommender.recommend({ userId: session.reader(), k: 10, explain: session.explain() }),
      (reply) =>
        out.replaceChildren(
          sourceBadge(reply.source, reply.modelVersion),
          scoredList("Recommended", reply.items, exclude),
        ),
      (p) => out.replaceChildren(message(p.message, "error")),
    );
    return;
  }
  recSection.cancel();
  const picker = h("fieldset", { id: "subjects" }, h("legend", {}, "Favourite subjects"), message("Loading…"));
  const slider = h("input", {
    id: "popularity",
    type: "range",
    min: 0,
    max: 1,
    step: 0.05,
    value: popularity ?? 0.5,
  });
  const shown = h("output", { for: "popularity", id: "popularity-value" }, popularity === undefined ? "model default" : popularity.toFixed(2));
  slider.addEventListener("input", () => {
    shown.textContent = Number(slider.value).toFixed(2);
  });
  slider.addEventListener("change", () => {
    popularity = Number(slider.value);
    shown.textContent = popularity.toFixed(2);
    loadColdStart(out);
  });
  aside.replaceChildren(
    title,
    message("Nothing rated yet: pick subjects you like, or rate a book."),
    picker,
    h("div", { class: "slider" }, h("label", { for: "popularity" }, "Popularity weight"), slider, shown),
    out,
  );
  const fill = () => fillSubjects(picker, out);
  if (subjects.length) fill();
  else
    void subjectsSection.run(
      () => catalog.listSubjects({ pageSize: 12 }),
      (reply) => {
        subjects = reply.subjects;
        fill();
      },
      (p) => picker.replaceChildren(h("legend", {}, "Favourite subjects"), message(p.message, "error")),
    );
  loadColdStart(out);
}

function fillSubjects(picker: HTMLElement, out: HTMLElement): void {
  picker.replaceChildren(
    h("legend", {}, "Favourite subjects"),
    ...subjects.map((s) => {
      const id = `subject-${s.subjectId}`;
      const box = h("input", { type: "checkbox", id, value: s.subjectId, checked: favourites.has(s.subjectId) });
      box.addEventListener("change", () => {
        if (box.checked) favourites.add(s.subjectId);
        else favourites.delete(s.subjectId);
        loadColdStart(out);
      });
      return h("span", { class: "choice" }, box, h("label", { for: id }, s.name));
    }),
  );
}

function loadColdStart(out: HTMLElement): void {
  void coldSection.run(
    () =>
      recommender.coldStart({
        favouriteSubjects: [...favourites],
        popularityWeight: popularity,
        k: 10,
        explain: session.explain(),
      }),
    (reply) =>
      out.replaceChildren(sourceBadge(reply.source, reply.modelVersion), scoredList("Cold start", reply.items, new Set())),
    (p) => out.replaceChildren(message(p.message, "error")),
  );
}
