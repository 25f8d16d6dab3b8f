// The connection banner and the retry loop every view's calls go through: while the
// server is down or reloading the page says so, retries with backoff, and clears the
// message by itself once a call succeeds again.
import { problem, type Problem } from "./api.js";
import { $ } from "./dom.js";

const failing = new Map<string, Problem>();
const sleepers = new Set<() => void>();

function show(): void {
  const banner = $("banner");
  const box = $("key-box") as HTMLDetailsElement;
  const keyForm = $("key-form");
  const first = failing.values().next();
  if (first.done) {
    banner.hidden = true;
    banner.replaceChildren();
    if (keyForm.parentElement !== box) box.append(keyForm);
    return;
  }
  const p = first.value;
  const retryNow = document.createElement("button");
  retryNow.type = "button";
  retryNow.textContent = "Retry now";
  retryNow.addEventListener("click", () => [...sleepers].forEach((wake) => wake()));
  const text = document.createElement("span");
  text.textContent = p.retry ? `${p.message} Retrying…` : p.message;
  banner.dataset.kind = p.kind;
  // Without a usable key the key form itself moves into the message: one place says
  // what is wrong and takes the fix. It goes back under "API key" afterwards.
  if (p.kind === "auth") {
    box.open = false;
    banner.replaceChildren(text, keyForm);
  } else {
    if (keyForm.parentElement !== box) box.append(keyForm);
    banner.replaceChildren(text, ...(p.retry ? [retryNow] : []));
  }
  banner.hidden = false;
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      sleepers.delete(done);
      resolve();
    }
    sleepers.add(done);
  });
}

/** A part of the page that loads one thing at a time: a newer load supersedes an
 *  older one (whose retries stop), and its result is rendered only if still current. */
export class Section {
  private generation = 0;

  constructor(private readonly name: string) {}

  /** Runs ``fetch`` until it succeeds or fails for a reason retrying cannot fix
   *  (then ``onError`` gets the message); ``render`` sees only current results. */
  async run<T>(
    fetch: () => Promise<T>,
    render: (value: T) => void,
    onError: (p: Problem) => void,
  ): Promise<void> {
    const mine = ++this.generation;
    for (let delay = 500; ; delay = Math.min(delay * 2, 4000)) {
      try {
        const value = await fetch();
        if (mine !== this.generation) return;
        failing.delete(this.name);
        show();
        render(value);
        return;
      } catch (e) {
        if (mine !== this.generation) return;
        const p = problem(e);
        if (!p.retry) {
          if (p.kind === "auth") failing.set(this.name, p);
          else failing.delete(this.name);
          show();
          onError(p);
          return;
        }
        failing.set(this.name, p);
        show();
        await pause(delay);
        if (mine !== this.generation) return;
      }
    }
  }

  /** Forgets this section's problem (its view went away). */
  cancel(): void {
    this.generation++;
    failing.delete(this.name);
    show();
  }
}

/** Drops every remembered problem, e.g. after a new API key. */
export function clearProblems(): void {
  failing.clear();
  show();
}
