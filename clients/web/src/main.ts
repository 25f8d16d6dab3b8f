// The page: a hash router over two views (search, book) beside the "For you" panel.
import "./style.css";
import { leaveBook, renderBook } from "./book.js";
import { $ } from "./dom.js";
import { renderForYou } from "./foryou.js";
import { leaveSearch, renderSearch } from "./search.js";
import { session } from "./session.js";
import { clearProblems } from "./status.js";

const main = $("main");
const aside = $("for-you");
const readerInput = $<HTMLInputElement>("reader-id");
const explain = $<HTMLInputElement>("explain");

function refreshForYou(): void {
  renderForYou(aside);
}

function route(): void {
  const hash = window.location.hash || "#/";
  const book = /^#\/book\/(.+)$/.exec(hash);
  if (book) {
    leaveSearch();
    renderBook(main, decodeURIComponent(book[1] ?? ""), refreshForYou);
    return;
  }
  leaveBook();
  const q = /[?&]q=([^&]*)/.exec(hash);
  renderSearch(main, q ? decodeURIComponent((q[1] ?? "").replace(/\+/g, " ")) : "");
}

function everything(): void {
  clearProblems();
  route();
  refreshForYou();
}

session.adoptKeyFromFragment();
readerInput.value = session.reader();
explain.checked = session.explain();
readerInput.addEventListener("change", () => {
  session.setReader(readerInput.value);
  readerInput.value = session.reader();
  everything();
});
$("new-reader").addEventListener("click", () => {
  readerInput.value = session.startOver();
  everything();
});
explain.addEventListener("change", () => {
  session.setExplain(explain.checked);
  everything();
});
$("key-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  session.setApiKey($<HTMLInputElement>("api-key").value);
  ($("key-box") as HTMLDetailsElement).open = false;
  everything();
});
window.addEventListener("hashchange", () => {
  route();
  main.focus({ preventScroll: true });
});
everything();
