// What the page remembers for this tab (sessionStorage): the API key, the reader id,
// the books this reader rated here, and the explain switch.

export interface Rated {
  bookId: string;
  title: string;
  rating: number;
}

const KEY = "bookrec.key";
const READER = "bookrec.reader";
const EXPLAIN = "bookrec.explain";
const ratedKey = (reader: string): string => `bookrec.rated.${reader}`;

function newReader(): string {
  const bytes = new Uint8Array(4);
  crypto.getRandomValues(bytes);
  return "web-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export const session = {
  apiKey(): string {
    return sessionStorage.getItem(KEY) ?? "";
  },
  setApiKey(key: string): void {
    sessionStorage.setItem(KEY, key.trim());
  },
  /** Takes a key from a #key=... fragment (as make run prints it), then hides it. */
  adoptKeyFromFragment(): void {
    const m = /^#key=([^&]*)/.exec(window.location.hash);
    if (m) {
      this.setApiKey(decodeURIComponent(m[1] ?? ""));
      history.replaceState(null, "", window.location.pathname + "#/");
    }
  },
  reader(): string {
    let id = sessionStorage.getItem(READER);
    if (!id) {
      id = newReader();
      sessionStorage.setItem(READER, id);
    }
    return id;
  },
  setReader(id: string): void {
    sessionStorage.setItem(READER, id.trim() || newReader());
  },
  /** A new reader with nothing rated: the server's rating log keeps what the old one rated. */
  startOver(): string {
    const id = newReader();
    sessionStorage.setItem(READER, id);
    return id;
  },
  rated(): Rated[] {
    try {
      const raw = sessionStorage.getItem(ratedKey(this.reader()));
      return raw ? (JSON.parse(raw) as Rated[]) : [];
    } catch {
      return [];
    }
  },
  addRated(r: Rated): void {
    const list = this.rated().filter((x) => x.bookId !== r.bookId);
    list.push(r);
    sessionStorage.setItem(ratedKey(this.reader()), JSON.stringify(list));
  },
  explain(): boolean {
    return sessionStorage.getItem(EXPLAIN) === "1";
  },
  setExplain(on: boolean): void {
    sessionStorage.setItem(EXPLAIN, on ? "1" : "0");
  },
};
