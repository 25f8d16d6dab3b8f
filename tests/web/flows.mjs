// Browser flows of the web page in real headless Chromium (tests/test_web.py runs this).
// Usage: node tests/web/flows.mjs FLOW BASE_URL API_KEY SHOT_DIR
//   FLOW "main":   search -> page -> book -> Similar modes -> rate two books -> Recommend
//                  changes and excludes them -> clear ratings -> cold-start slider reorders
//   FLOW "outage": no key -> the key message -> key -> server stopped: the message, then
//                  back: it recovers. The server is stopped and started by the test: this
//                  script prints "ask: stop" / "ask: start" and waits for a line on stdin.
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

const [flow, base, apiKey, shots] = process.argv.slice(2);
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

async function mainFlow(page) {
  await page.goto(`${base}#key=${encodeURIComponent(apiKey)}`);
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
  const als = await ids(page, "#similar-results ol.results");
  expect(als.length > 0 && !als.includes(bookId), "ALS similar books, without the book itself");
  expect(await page.locator("#hybrid-weight").isDisabled(), "the weight is off outside hybrid");
  await page.locator("#mode-subject").check();
  await page.locator(source("SUBJECT")).waitFor({ timeout: TIMEOUT });
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
  expect(["ALS", "ALS_RERANKED", "COLD_START"].includes(recSource), `Recommend's source is named (${recSource})`);
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
  await shot(page, "web-cold-start");
  // Phone width: nothing wider than the screen.
  await page.setViewportSize({ width: 390, height: 844 });
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  expect(wide <= 390, `readable at phone width (page ${wide}px wide)`);
  await shot(page, "web-phone");
}

async function outageFlow(page) {
  await page.goto(base);
  await waitFor(page, () => document.querySelector("#banner:not([hidden])")?.dataset.kind === "auth", null, "no key: the key message");
  expect((await page.locator("#banner").textContent()).includes("API key"), "the message says to paste an API key");
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
  viewport: { width: 1200, height: 900 },
});
let code = 0;
const page = context.pages()[0] ?? (await context.newPage());
const consoleErrors = [];
page.on("pageerror", (e) => consoleErrors.push(String(e)));
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
