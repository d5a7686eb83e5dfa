/**
 * `WWW-Authenticate` parsing (RFC 7235 §4.1). A header may hold several
 * challenges, each a scheme followed by a token68 or comma-separated
 * `name=value` params; values may be quoted and then contain commas
 * (`scope="repository:a:pull,push"`), so this is a small scanner, not a split.
 */

export interface Challenge {
  /** Lowercased: 'bearer', 'basic', ... */
  scheme: string;
  /** Param names lowercased; values unquoted and unescaped. */
  params: Record<string, string>;
  /** The token68 form (`Negotiate abc==`), when used instead of params. */
  token68?: string;
}

const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

class Scanner {
  pos = 0;
  constructor(readonly s: string) {}
  get done(): boolean {
    return this.pos >= this.s.length;
  }
  peek(): string {
    return this.s[this.pos] ?? '';
  }
  skipWs(): void {
    while (this.peek() === ' ' || this.peek() === '\t') this.pos++;
  }
  skipWsAndCommas(): void {
    while (this.peek() === ' ' || this.peek() === '\t' || this.peek() === ',') this.pos++;
  }
  token(): string {
    const start = this.pos;
    while (!this.done && TCHAR.test(this.peek())) this.pos++;
    return this.s.slice(start, this.pos);
  }
  quoted(): string {
    this.pos++; // opening quote
    let out = '';
    while (!this.done && this.peek() !== '"') {
      if (this.peek() === '\\' && this.pos + 1 < this.s.length) this.pos++;
      out += this.peek();
      this.pos++;
    }
    this.pos++; // closing quote (or past the end when unterminated)
    return out;
  }
  /** Unquoted values: registries send URLs and scopes here, so read up to the next comma or space. */
  bare(): string {
    const start = this.pos;
    while (!this.done && this.peek() !== ',' && this.peek() !== ' ' && this.peek() !== '\t') this.pos++;
    return this.s.slice(start, this.pos);
  }
  /** Is a `name =` param next (as opposed to the next challenge's scheme)? */
  paramAhead(): boolean {
    const save = this.pos;
    const name = this.token();
    this.skipWs();
    let ok = name !== '' && this.peek() === '=';
    if (ok) {
      // `name=` followed by '=', ',' or the end is token68 padding (`YWJjZA==`), not a param.
      this.pos++;
      this.skipWs();
      ok = !this.done && this.peek() !== '=' && this.peek() !== ',';
    }
    this.pos = save;
    return ok;
  }
}

function parseOne(header: string, out: Challenge[]): void {
  const sc = new Scanner(header);
  for (;;) {
    sc.skipWsAndCommas();
    if (sc.done) return;
    const scheme = sc.token();
    if (scheme === '') {
      sc.pos++; // garbage: skip a character rather than loop forever
      continue;
    }
    const ch: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    out.push(ch);
    sc.skipWs();
    if (!sc.paramAhead()) {
      // token68 (`Negotiate abc==`), or nothing and the next challenge follows after a comma.
      const t = /^[A-Za-z0-9\-._~+/]+=*(?=$|[\s,])/.exec(sc.s.slice(sc.pos));
      if (t) {
        ch.token68 = t[0];
        sc.pos += t[0].length;
      }
      continue;
    }
    for (;;) {
      const name = sc.token().toLowerCase();
      sc.skipWs();
      sc.pos++; // '='
      sc.skipWs();
      ch.params[name] = sc.peek() === '"' ? sc.quoted() : sc.bare();
      sc.skipWs();
      if (sc.peek() !== ',') break;
      sc.skipWsAndCommas();
      if (!sc.paramAhead()) break;
    }
  }
}

/** All challenges in one or more `WWW-Authenticate` header values, in order. */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  const out: Challenge[] = [];
  for (const h of header === undefined ? [] : Array.isArray(header) ? header : [header]) parseOne(h, out);
  return out;
}
