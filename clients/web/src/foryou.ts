// The "For you" panel: Recommend for a reader who rated books here (refreshed after
// every rating, never listing what they rated), and ColdStart from favourite subjects
// and a popularity slider for one who rated nothing.
import { catalog, recommender } from "./api.js";
import { h } from "./dom.js";
import type { Subject } from "./gen/bookrec/v1/common_pb.js";
import { loadingState, problemState, scoredList, settle, sourceBadge, updating } from "./render.js";
import { session } from "./session.js";
import { Section } from "./status.js";

const recSection = new Section("recommend");
const subjectsSection = new Section("subjects");
const coldSection = new Section("cold-start");
const favourites = new Set<string>();
let popularity: number | undefined; // unset: the model's own default
// The serving model's default popularity weight, from its last ColdStart reply.
let modelDefault: number | undefined;
let subjects: Subject[] = [];

export function renderForYou(aside: HTMLElement): void {
  const rated = session.rated();
  const title = h("h2", { id: "for-you-title" }, "For you");
  const out = h("div", { id: "for-you-results", "aria-live": "polite" }, loadingState("recommendations"));
  if (rated.length) {
    coldSection.cancel();
    renderRecommend(aside, title, out);
    return;
  }
  recSection.cancel();
  const picker = h(
    "fieldset",
    { id: "subjects" },
    h("legend", {}, "Favourite subjects"),
    loadingState("subjects", 8, "chips"),
  );
  const weight = weightControl(() => loadColdStart(out, weight.refresh));
  aside.replaceChildren(
    title,
    h("p", { class: "intro" }, "Nothing rated yet. Pick subjects you like, or open a book and rate it."),
    picker,
    weight.element,
    out,
  );
  const fill = () => fillSubjects(picker, () => loadColdStart(out, weight.refresh));
  if (subjects.length) fill();
  else
    void subjectsSection.run(
      () => catalog.listSubjects({ pageSize: 12 }),
      (reply) => {
        subjects = reply.subjects;
        fill();
      },
      (p) => picker.replaceChildren(h("legend", {}, "Favourite subjects"), problemState(p, "the subjects", "chips")),
    );
  loadColdStart(out, weight.refresh);
}

function renderRecommend(aside: HTMLElement, title: HTMLElement, out: HTMLElement): void {
  const rated = session.rated();
  const list = h(
    "ul",
    { class: "rated", "aria-label": "You rated" },
    rated.map((r) =>
      h(
        "li",
        { "data-book-id": r.bookId },
        h("a", { href: `#/book/${encodeURIComponent(r.bookId)}` }, r.title),
        h("span", { class: "score" }, r.rating ? `${r.rating}/10` : "read"),
      ),
    ),
  );
  aside.replaceChildren(title, h("h3", {}, "You rated"), list, h("h3", {}, "Recommended"), out);
  const exclude = new Set(rated.map((r) => r.bookId));
  void recSection.run(
    () => recommender.recommend({ userId: session.reader(), k: 10, explain: session.explain() }),
    (reply) =>
      settle(
        out,
        sourceBadge("recommend", reply.source, reply.modelVersion),
        scoredList("Recommended", reply.items, exclude),
      ),
    (p) => settle(out, problemState(p, "recommendations")),
  );
}

interface WeightControl {
  element: HTMLElement;
  /** Shows the chosen weight, or the model's default once a reply has named it. */
  refresh: () => void;
}

/** The popularity slider: at the model's default (from the ColdStart reply) until the
 *  person moves it; "Use the model's default" goes back to it. */
function weightControl(reload: () => void): WeightControl {
  const slider = h("input", { id: "popularity", type: "range", min: 0, max: 1, step: 0.01, disabled: true });
  const shown = h("output", { for: "popularity", id: "popularity-value" }, "…");
  const note = h("span", { id: "popularity-note", class: "tag", hidden: true }, "model default");
  const reset = h("button", { type: "button", id: "popularity-reset", class: "link", hidden: true }, "Use the model's default");
  const refresh = (): void => {
    const value = popularity ?? modelDefault;
    slider.disabled = value === undefined;
    slider.classList.toggle("unknown", value === undefined);
    if (value !== undefined) slider.value = String(value);
    shown.textContent = value === undefined ? "…" : value.toFixed(2);
    note.hidden = popularity !== undefined || modelDefault === undefined;
    reset.hidden = popularity === undefined;
  };
  slider.addEventListener("input", () => {
    shown.textContent = Number(slider.value).toFixed(2);
    note.hidden = true;
  });
  slider.addEventListener("change", () => {
    popularity = Number(slider.value);
    refresh();
    reload();
  });
  reset.addEventListener("click", () => {
    popularity = undefined;
    refresh();
    reload();
  });
  refresh();
  const element = h(
    "div",
    { class: "slider weight" },
    h("div", { class: "slider-head" }, h("label", { for: "popularity" }, "Popularity weight"), shown, note),
    slider,
    h("p", { class: "hint" }, "0: your subjects only · 1: what most readers read. ", reset),
  );
  return { element, refresh };
}

function fillSubjects(picker: HTMLElement, reload: () => void): void {
  picker.replaceChildren(
    h("legend", {}, "Favourite subjects"),
    ...subjects.map((s) => {
      const id = `subject-${s.subjectId}`;
      const box = h("input", { type: "checkbox", id, value: s.subjectId, checked: favourites.has(s.subjectId) });
      box.addEventListener("change", () => {
        if (box.checked) favourites.add(s.subjectId);
        else favourites.delete(s.subjectId);
        reload();
      });
      return h("span", { class: "chip" }, box, h("label", { for: id }, s.name));
    }),
  );
}

function loadColdStart(out: HTMLElement, onDefault: () => void): void {
  updating(out);
  void coldSection.run(
    () =>
      recommender.coldStart({
        favouriteSubjects: [...favourites],
        popularityWeight: popularity,
        k: 10,
        explain: session.explain(),
      }),
    (reply) => {
      modelDefault = reply.defaultPopularityWeight;
      onDefault();
      settle(out, sourceBadge("coldStart", reply.source, reply.modelVersion), scoredList("Cold start", reply.items, new Set()));
    },
    (p) => settle(out, problemState(p, "recommendations")),
  );
}
