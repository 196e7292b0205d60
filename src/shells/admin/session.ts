// Dashboard sessions and the request-forgery defence of every state-changing call
// (docs/decisions/0031-incident-console.md). The bearer token is exchanged once for a session:
// an HttpOnly, SameSite=Strict cookie plus a per-session token the page sends in a header on
// every POST. A POST from a browser (it carries Origin or Sec-Fetch-Site) must come from this
// origin and carry the session's token; a script with the bearer token and no browser headers
// (curl, cron) needs no session: no page elsewhere can make a browser send that header.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type http from 'node:http';

export const SESSION_COOKIE = 'mailward_session';
export const CSRF_HEADER = 'x-mailward-csrf';
/** A session unused this long is gone (the operator signs in again). */
const IDLE_MS = 8 * 3600_000;
const MAX_SESSIONS = 64;

export interface Session {
  readonly id: string;
  readonly csrf: string;
  /** Short, for log lines: who did it (the token names nobody). */
  readonly tag: string;
  readonly remote: string;
  lastUsed: number;
}

/** Why a POST is refused (403), or undefined when it may go on. */
export type ForgeryCheck = string | undefined;

const same = (a: string, b: string): boolean => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

function cookieValue(req: http.IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export class Sessions {
  readonly #byId = new Map<string, Session>();
  readonly #clock: () => number;

  constructor(clock: () => number) {
    this.#clock = clock;
  }

  /** A new session for a caller that showed the bearer token; returns it and its Set-Cookie value. */
  open(remote: string): { session: Session; cookie: string } {
    this.#expire();
    if (this.#byId.size >= MAX_SESSIONS) {
      // The oldest goes: a loop of sign-ins cannot grow memory.
      const oldest = [...this.#byId.values()].sort((a, b) => a.lastUsed - b.lastUsed)[0]!;
      this.#byId.delete(oldest.id);
    }
    const id = randomBytes(24).toString('base64url');
    const session: Session = { id, csrf: randomBytes(24).toString('base64url'), tag: id.slice(0, 8), remote, lastUsed: this.#clock() };
    this.#byId.set(id, session);
    // Path=/api: the page itself needs no cookie. No Secure flag: the admin port is plain HTTP on
    // loopback (behind a TLS proxy the browser still sends it to the proxy's origin).
    return { session, cookie: `${SESSION_COOKIE}=${id}; HttpOnly; SameSite=Strict; Path=/api; Max-Age=${IDLE_MS / 1000}` };
  }

  /** The live session the request's cookie names, if any. */
  of(req: http.IncomingMessage): Session | undefined {
    const id = cookieValue(req, SESSION_COOKIE);
    if (!id) return undefined;
    const s = this.#byId.get(id);
    if (!s) return undefined;
    const now = this.#clock();
    if (now - s.lastUsed > IDLE_MS) {
      this.#byId.delete(id);
      return undefined;
    }
    s.lastUsed = now;
    return s;
  }

  close(s: Session): void {
    this.#byId.delete(s.id);
  }

  #expire(): void {
    const now = this.#clock();
    for (const [id, s] of this.#byId) if (now - s.lastUsed > IDLE_MS) this.#byId.delete(id);
  }
}

/** The cookie that ends a session in the browser. */
export const CLEAR_COOKIE = `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/api; Max-Age=0`;

/** True when the request comes from a browser (fetch metadata or an Origin on a POST). */
export const fromBrowser = (req: http.IncomingMessage): boolean => req.headers['sec-fetch-site'] !== undefined || req.headers.origin !== undefined;

/**
 * The checks of a state-changing request: this origin only (Origin against Host, and Sec-Fetch-Site),
 * and from a browser the session's own token in the header (a forged request cannot read it).
 */
export function checkForgery(req: http.IncomingMessage, session: Session | undefined, signIn = false): ForgeryCheck {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin') return `Sec-Fetch-Site is ${JSON.stringify(site)}, not same-origin`;
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== `http://${req.headers.host ?? ''}` && origin !== `https://${req.headers.host ?? ''}`) return `Origin ${JSON.stringify(origin)} is not this server's`;
  // Signing in has no session yet: the bearer token it must carry is the proof.
  if (signIn || !fromBrowser(req)) return undefined;
  if (!session) return 'a browser request needs a dashboard session (sign in again)';
  const sent = req.headers[CSRF_HEADER];
  if (typeof sent !== 'string' || !same(sent, session.csrf)) return `the ${CSRF_HEADER} header does not match the session`;
  return undefined;
}
