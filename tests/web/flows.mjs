// Browser flows of the web page in real headless Chromium (tests/test_web.py runs this).
// Usage: node tests/web/flows.mjs FLOW BASE_URL API_KEY SHOT_DIR [POPULARITY_DEFAULT]
//   FLOW "main":   loading state -> search -> page -> empty and error states -> book ->
//                  Similar modes and their labels -> rate two books -> Recommend changes
//                  and excludes them -> clear ratings -> the popularity slider starts at
//                  the model's default (POPULARITY_DEFAULT, from the artifact's manifest)
//                  and reorders the cold-start results -> the favicon -> phone width
//   FLOW "outage": no key -> the key message, once -> key -> server stopped: the message,
//                  then back: it recovers. The server is stopped and started by the test:
//                  this script prints "ask: stop" / "ask: start" and waits for a line on stdin.
// Any failed expectation exits 1 with the reason (and a screenshot "failure-FLOW.png").
import { mkdirSync, rmSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

// playwright-core is a dev dependency of the page (clients/web/package.json).
const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const { chromium } = createRequire(join(root, "clients", "web", "package.json"))("playwright-core");

const [flow, base, apiKey, shots, popularityDefault] = process.argv.slice(2);
const TIMEOUT = 20_000;
mkdirSync(shots, { recursive: true });
const stdin = createInterface({ input: process.stdin });
const lines = stdin[Symbol.asyncIterator]();

function expect(ok, what) {
  if (!ok) throw new Error(`expected: ${what}`);
  console.log(`ok: ${what}`);
}

async function ask(what) {
  console.log(`ask: ${what}`);
  const { value } = await lines.next();
  expect(value === "done", `the test did "${what}"`);
}

const ids = (page, list) =>
  page.locator(`${list} > li[data-book-id]`).evaluateAll((els) => els.map((e) => e.dataset.bookId));

async function waitFor(page, fn, arg, what) {
  try {
    await page.waitForFunction(fn, arg, { timeout: TIMEOUT });
  } catch {
    throw new Error(`timed out waiting for: ${what}`);
  }
  console.log(`ok: ${what}`);
}

async function shot(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

// Every HTTP answer of 400 or more the page got (a missing favicon was one).
const failedResponses = [];

const SEARCH_RPC = "**/bookrec.v1.CatalogService/SearchBooks";

/** Opens the page with its first SearchBooks held back, so the loading state can be
 *  seen for certain (no timing), then lets it through. */
async function openWhileLoading(page, url) {
  let release;
  const held = new Promise((resolve) => (release = resolve));
  let first = true;
  const hold = async (route) => {
    if (first) {
      first = false;
      await held;
    }
    await route.continue();
  };
  await page.route(SEARCH_RPC, hold);
  await page.goto(url);
  await waitFor(
    page,
    () => document.querySelector('#search-results .state.loading[aria-busy="true"] .skeleton-row'),
    null,
    "while SearchBooks is held back: the loading state",
  );
  const said = await page.locator("#search-results .state.loading").textContent();
  expect(said.includes("Loading books"), "loading state: placeholder rows and \"Loading books…\" for screen readers");
  release();
  await page.locator("#search-results li[data-book-id] a").first().waitFor({ timeout: TIMEOUT });
  await page.unroute(SEARCH_RPC, hold);
}

async function checkFavicon(page) {
  const icon = page.locator('link[rel="icon"]');
  expect((await icon.count()) === 1, "the page names a favicon");
  const href = await icon.getAttribute("href");
  const reply = await page.request.get(new URL(href, base).href);
  expect(reply.status() === 200, `the favicon ${href} answers 200 (got ${reply.status()})`);
  expect((reply.headers()["content-type"] ?? "").startsWith("image/svg+xml"), "the favicon is an SVG image");
}

async function mainFlow(page) {
  await openWhileLoading(page, `${base}#key=${encodeURIComponent(apiKey)}`);
  const first = page.locator("#search-results li[data-book-id] a").first();
  await first.waitFor({ timeout: TIMEOUT });
  expect(!page.url().includes(apiKey), "the key is taken out of the address bar");
  expect((await page.locator("#page-info").textContent()).startsWith("Page 1 of "), "page 1 shown");
  const page1 = await ids(page, "#search-results ul.books");
  // Pagination, by keyboard: focus Next and press Enter.
  await page.locator("#next-page").focus();
  await page.keyboard.press("Enter");
  await waitFor(page, () => document.querySelector("#page-info")?.textContent?.startsWith("Page 2 "), null, "page 2 after Next");
  const page2 = await ids(page, "#search-results ul.books");
  expect(page2.length > 0 && page2.every((id) => !page1.includes(id)), "page 2 holds other books");
  await page.locator("#prev-page").click();
  await waitFor(page, () => document.querySelector("#page-info")?.textContent?.startsWith("Page 1 "), null, "back on page 1");
  // Search for a word of the first title.
  const title = await first.textContent();
  expect((await page.locator("#search-results li[data-book-id] .cover").count()) > 0, "search results carry cover placeholders");
  // The popularity slider starts at the model's trained default, and says so.
  await page.locator('#for-you-results .source[data-source="POPULARITY"]').waitFor({ timeout: TIMEOUT });
  const want = Number(popularityDefault);
  expect(Number.isFinite(want), `the test gave the model's default popularity weight (${popularityDefault})`);
  await waitFor(
    page,
    (w) => Math.abs(Number(document.querySelector("#popularity")?.value) - w) < 0.006,
    want,
    `the popularity slider sits at the model's default ${want}`,
  );
  expect((await page.locator("#popularity-value").textContent()) === want.toFixed(2), "its value shows the model's default");
  expect(await page.locator("#popularity-note").isVisible(), "labelled as the model default");
  expect((await page.locator("#popularity-note").textContent()) === "model default", "the label says \"model default\"");
  // An empty search says so, as a state of its own.
  await page.fill("#search-q", "zzqxjv");
  await page.keyboard.press("Enter");
  await waitFor(page, () => document.querySelector("#search-results .state.empty"), null, "no match: the empty state");
  expect((await page.locator("#search-results .state.empty").textContent()).includes("No book matches"), "empty state for no match");
  // A book the model does not know: the error state with the server's one-line message.
  await page.evaluate(() => {
    location.hash = "#/book/no-such-book";
  });
  await waitFor(
    page,
    () => document.querySelector('#book-details .state.error[role="alert"]'),
    null,
    "a book the model does not know: the error state",
  );
  const error = await page.locator("#book-details .state.error").textContent();
  expect(error.includes("Could not load this book") && error.includes("no-such-book"), `error state names the problem (${error})`);
  expect(await page.locator("#banner").isHidden(), "a request error stays in its place, not in the banner");
  await shot(page, "web-error");
  await page.evaluate(() => {
    location.hash = "#/";
  });
  await first.waitFor({ timeout: TIMEOUT });
  const word = title.split(/\s+/).find((w) => w.length > 3) ?? title;
  await page.fill("#search-q", word);
  await page.keyboard.press("Enter");
  await waitFor(
    page,
    (w) => {
      const items = [...document.querySelectorAll("#search-results ul.books li")];
      return location.hash.includes("q=") && items.length > 0 &&
        items.every((li) => li.textContent.toLowerCase().includes(w.toLowerCase()));
    },
    word,
    `every result of the search "${word}" carries the word`,
  );
  await shot(page, "web-search");
  // Open the book.
  const opened = page.locator("#search-results li[data-book-id] a").first();
  const openedTitle = await opened.textContent();
  await opened.click();
  await page.locator("article#book-details h1").waitFor({ timeout: TIMEOUT });
  expect((await page.locator("#book-details h1").textContent()) === openedTitle, "book page open");
  const bookId = await page.locator("#book-details").getAttribute("data-book-id");
  const source = (s) => `#similar-results .source[data-source="${s}"]`;
  await page.locator(source("ALS")).waitFor({ timeout: TIMEOUT });
  const alsLabel = await page.locator(source("ALS")).textContent();
  expect(
    alsLabel.includes("Answered by co-reading (ALS)") && !/personal|your/i.test(alsLabel),
    `the Similar (ALS) list is labelled as co-reading, not personal (${alsLabel})`,
  );
  expect(await page.locator("#book-details .cover-large").isVisible(), "the book page shows a cover placeholder");
  const als = await ids(page, "#similar-results ol.results");
  expect(als.length > 0 && !als.includes(bookId), "ALS similar books, without the book itself");
  expect(await page.locator("#hybrid-weight").isDisabled(), "the weight is off outside hybrid");
  await page.locator("#mode-subject").check();
  await page.locator(source("SUBJECT")).waitFor({ timeout: TIMEOUT });
  expect((await page.locator(source("SUBJECT")).textContent()).includes("shared subjects"), "Subject mode is labelled shared subjects");
  const subject = await ids(page, "#similar-results ol.results");
  expect(subject.length > 0 && subject.join() !== als.join(), "Subject mode gives another list");
  await page.locator("#mode-hybrid").check();
  await page.locator(source("HYBRID")).waitFor({ timeout: TIMEOUT });
  await page.locator("#hybrid-weight").fill("1");
  await waitFor(page, () => document.querySelector("#hybrid-weight-value")?.textContent === "1.0", null, "weight 1.0 shown");
  await shot(page, "web-book");
  // Nothing rated yet: the panel is cold start (popularity alone with no subject).
  await page.locator('#for-you-results .source[data-source="POPULARITY"]').waitFor({ timeout: TIMEOUT });
  // Rate this book, then a similar one.
  await page.selectOption("#rating", "9");
  await page.locator("#rate-button").click();
  await waitFor(page, () => document.querySelector("#rate-status")?.textContent === "Rated 9.", null, "first rating saved");
  await page.locator("#for-you ul.rated li").first().waitFor({ timeout: TIMEOUT });
  await page.locator("#for-you-results ol.results li").first().waitFor({ timeout: TIMEOUT });
  const after1 = await ids(page, "#for-you-results ol.results");
  expect(after1.length > 0 && !after1.includes(bookId), "Recommend after one rating excludes it");
  const second = await page.locator("#similar-results ol.results > li[data-book-id]").first().getAttribute("data-book-id");
  await page.locator(`#similar-results li[data-book-id="${second}"] a`).first().click();
  await waitFor(page, (id) => document.querySelector("#book-details")?.dataset.bookId === id, second, "second book open");
  await page.selectOption("#rating", "10");
  await page.locator("#rate-button").click();
  await waitFor(page, () => document.querySelector("#rate-status")?.textContent === "Rated 10.", null, "second rating saved");
  await waitFor(page, () => document.querySelectorAll("#for-you ul.rated li").length === 2, null, "two books listed as rated");
  await waitFor(
    page,
    ([a, b, before]) => {
      const now = [...document.querySelectorAll("#for-you-results ol.results > li")].map((e) => e.dataset.bookId);
      return now.length > 0 && now.join() !== before && !now.includes(a) && !now.includes(b);
    },
    [bookId, second, after1.join()],
    "Recommend changed after the second rating and lists neither rated book",
  );
  const recSource = await page.locator("#for-you-results .source").getAttribute("data-source");
  // HYBRID: a reader the model does not know yet, shrunk towards popularity by evidence.
  expect(["ALS", "ALS_RERANKED", "COLD_START", "HYBRID"].includes(recSource), `Recommend's source is named (${recSource})`);
  const recLabel = await page.locator("#for-you-results .source strong").textContent();
  expect(
    {
      ALS: "your ratings (ALS)",
      ALS_RERANKED: "your ratings (ALS, reranked)",
      COLD_START: "subjects of the books you rated",
      HYBRID: "your ratings and popularity",
    }[recSource] === recLabel,
    `Recommend's label fits its source (${recLabel})`,
  );
  // Explain on: every list shows its reasons.
  await page.locator("#explain").check();
  await waitFor(page, () => document.querySelectorAll("#for-you-results .reasons li").length > 0, null, "reasons shown with explain on");
  await waitFor(page, () => document.querySelectorAll("#similar-results .reasons li").length > 0, null, "Similar shows reasons too");
  await shot(page, "web-for-you");
  // Clear ratings: a new reader with nothing rated, so cold start again.
  await page.locator("#new-reader").click();
  const box = page.locator("#subjects input[type=checkbox]").first();
  await box.waitFor({ timeout: TIMEOUT });
  await box.check();
  await page.locator('#for-you-results .source[data-source="COLD_START"]').waitFor({ timeout: TIMEOUT });
  await page.locator("#popularity").fill("0");
  await waitFor(page, () => document.querySelector("#popularity-value")?.textContent === "0.00", null, "popularity 0");
  await page.waitForLoadState("networkidle");
  const low = await ids(page, "#for-you-results ol.results");
  await page.locator("#popularity").fill("1");
  await waitFor(
    page,
    (before) => {
      const now = [...document.querySelectorAll("#for-you-results ol.results > li")].map((e) => e.dataset.bookId);
      return document.querySelector("#popularity-value")?.textContent === "1.00" && now.length > 0 && now.join() !== before;
    },
    low.join(),
    "the popularity slider reorders the cold-start results",
  );
  await waitFor(page, () => document.querySelectorAll("#for-you-results .reasons li").length > 0, null, "cold-start reasons shown");
  expect(!(await page.locator("#popularity-note").isVisible()), "a moved slider is no longer labelled model default");
  await shot(page, "web-cold-start");
  // Back to the model's default.
  await page.locator("#popularity-reset").click();
  await waitFor(
    page,
    (w) => document.querySelector("#popularity-value")?.textContent === w.toFixed(2) &&
      !document.querySelector("#popularity-note")?.hidden,
    want,
    "\"Use the model's default\" puts the slider back at the default",
  );
  await checkFavicon(page);
  // Phone width: nothing wider than the screen.
  await page.setViewportSize({ width: 390, height: 844 });
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  expect(wide <= 390, `readable at phone width (page ${wide}px wide)`);
  await shot(page, "web-phone");
  await page.evaluate(() => {
    location.hash = "#/";
  });
  await page.locator("#search-results li[data-book-id] a").first().waitFor({ timeout: TIMEOUT });
  const wideSearch = await page.evaluate(() => document.documentElement.scrollWidth);
  expect(wideSearch <= 390, `the catalogue is readable at phone width (page ${wideSearch}px wide)`);
  await shot(page, "web-phone-search");
  expect(failedResponses.length === 0, `no HTTP error answers (${failedResponses.join(", ")})`);
}

async function outageFlow(page) {
  await page.goto(base);
  await waitFor(page, () => document.querySelector("#banner:not([hidden])")?.dataset.kind === "auth", null, "no key: the key message");
  expect((await page.locator("#banner").textContent()).includes("API key"), "the message says to paste an API key");
  // Every part of the page has had its answer (none is loading any more)...
  await waitFor(
    page,
    () => ["#search-results", "#subjects", "#for-you-results"].every(
      (at) => document.querySelector(at) && !document.querySelector(`${at} [aria-busy="true"], ${at}[aria-busy="true"]`) &&
        document.querySelector(`${at} .state:not(.loading)`),
    ),
    null,
    "no key: search, subjects and For you have each settled without a result",
  );
  // ... and the message is on the page once.
  const needs = "This server needs an API key";
  const times = (await page.locator("body").innerText()).split(needs).length - 1;
  expect(times === 1, `the no-key message appears once (${times} times)`);
  await shot(page, "web-no-key");
  await page.fill("#api-key", apiKey);
  await page.keyboard.press("Enter");
  await page.locator("#search-results li[data-book-id]").first().waitFor({ timeout: TIMEOUT });
  await waitFor(page, () => document.querySelector("#banner")?.hidden === true, null, "the key message goes with a key");
  await ask("stop");
  await page.fill("#search-q", "the");
  await page.keyboard.press("Enter");
  await waitFor(page, () => document.querySelector("#banner:not([hidden])")?.dataset.kind === "offline", null, "server down: the message");
  const text = await page.locator("body").innerText();
  expect(text.includes("cannot be reached") && text.includes("Retrying"), "it says the server cannot be reached and that it retries");
  expect(!/\bat \S+:\d+|Error:|TypeError|stack/i.test(text), "no stack trace on the page");
  await shot(page, "web-offline");
  await ask("start");
  await waitFor(page, () => document.querySelector("#banner")?.hidden === true, null, "server back: the message goes by itself");
  await page.locator("#search-results li[data-book-id]").first().waitFor({ timeout: TIMEOUT });
  expect(page.url().includes("q=the"), "the search asked while down is answered");
}

const profile = mkdtempSync(join(tmpdir(), "bookrec-chromium-"));
// A persistent context is how Playwright takes a fresh --user-data-dir (the profile).
const context = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
  viewport: { width: 1280, height: 900 },
});
let code = 0;
const page = context.pages()[0] ?? (await context.newPage());
const consoleErrors = [];
page.on("pageerror", (e) => consoleErrors.push(String(e)));
page.on("response", (r) => {
  if (r.status() >= 400) failedResponses.push(`${r.status()} ${r.url()}`);
});
try {
  if (flow === "main") await mainFlow(page);
  else if (flow === "outage") await outageFlow(page);
  else throw new Error(`unknown flow ${flow}`);
  expect(consoleErrors.length === 0, `no uncaught page errors (${consoleErrors.join("; ")})`);
  console.log(`flow ${flow}: passed`);
} catch (e) {
  code = 1;
  console.log(`flow ${flow}: FAILED: ${e.message}`);
  await page.screenshot({ path: join(shots, `failure-${flow}.png`), fullPage: true }).catch(() => {});
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
  stdin.close();
}
process.exit(code);
