// The admin HTTP server (node:http, loopback by default): the dashboard page, a JSON API for the
// queue, breakers, recent decisions, top senders and users, the incident console (console-api.ts)
// and /metrics for Prometheus. Every API call needs the bearer token (Authorization header, never
// a URL or a log line) or a dashboard session made with it; a POST must also pass the forgery
// checks of session.ts. GETs change nothing (docs/decisions/0031-incident-console.md).
import http from 'node:http';
import type { AdminConfig } from '../../config/admin-schema.ts';
import type { Logger } from '../../observe/log.ts';
import type { Metrics, QueueStatsSource } from '../../observe/metrics.ts';
import type { MailStats } from '../../observe/stats.ts';
import { isQueueId } from '../../core/ids.ts';
import { listenOn } from '../../core/listen.ts';
import { loadToken } from './token.ts';
import { DASHBOARD_CSS, DASHBOARD_HTML } from './page.ts';
import { DASHBOARD_JS } from './dashboard-script.ts';
import { CONSOLE_JS } from './console-script.ts';
import { DMARC_JS } from './dmarc-script.ts';
import type { ReportSummary } from '../../app/dmarc-inbox.ts';
import type { TlsReportSummary } from '../../app/tlsrpt-inbox.ts';
import { TLSRPT_JS } from './tlsrpt-script.ts';
import type { GuardControl, OutboundControl, QueueConsole, QueueControl, UserList } from './controls.ts';
import { ApiError as HttpError, consoleRoute } from './console-api.ts';
import { checkForgery, CLEAR_COOKIE, Sessions, type Session } from './session.ts';

import type { LoadProgress } from '../../queue/queue.ts';
import type { GrowthStatus } from '../../guard/queue-growth.ts';

export type { GuardControl, QueueControl, UserList, BreakerStatus, QueueActionResult } from './controls.ts';

export interface AdminDeps {
  /** The `admin` section of the config (tokenFile already resolved to a path). */
  readonly config: Pick<AdminConfig, 'host' | 'port' | 'tokenFile' | 'metricsRequireToken'>;
  readonly stats: MailStats;
  readonly metrics: Metrics;
  readonly directory: UserList;
  readonly queueStats?: QueueStatsSource;
  readonly queueControl?: QueueControl;
  readonly guardControl?: GuardControl;
  /** The incident console: the queue by group, bulk commands, one message. */
  readonly queueConsole?: QueueConsole;
  /** "Stop all outbound". */
  readonly outbound?: OutboundControl;
  /** The queue's start-up scan: how far it is (shown while it runs). */
  readonly catalog?: () => LoadProgress;
  /** The queue-growth alarm's last sample (guard/queue-growth.ts), when it runs. */
  readonly queueGrowth?: () => GrowthStatus | undefined;
  /** Risks the running config acknowledges (relay.allowLocalTrust), shown as alerts. */
  readonly warnings?: () => ReadonlyArray<{ readonly setting: string; readonly message: string; readonly fix: string }>;
  /** The DMARC reports received at our rua whose period ended in the last `ms` (dmarcReports.read). */
  readonly dmarcReports?: (ms: number) => Promise<ReportSummary>;
  /** The TLS-RPT reports received at our rua whose period ended in the last `ms` (tlsReports.read). */
  readonly tlsReports?: (ms: number) => Promise<TlsReportSummary>;
  readonly log: Logger;
  readonly clock?: () => number;
}

export interface RunningAdmin {
  readonly port: number;
  readonly address: string;
  close(): Promise<void>;
}

// The page loads only its own script and style sheet and talks only to this server.
const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cache-Control': 'no-store',
};

const STATIC: Record<string, { type: string; body: string }> = {
  '/': { type: 'text/html; charset=utf-8', body: DASHBOARD_HTML },
  '/dashboard.js': { type: 'text/javascript; charset=utf-8', body: DASHBOARD_JS },
  '/dashboard.css': { type: 'text/css; charset=utf-8', body: DASHBOARD_CSS },
  '/console.js': { type: 'text/javascript; charset=utf-8', body: CONSOLE_JS },
  '/dmarc.js': { type: 'text/javascript; charset=utf-8', body: DMARC_JS },
  '/tlsrpt.js': { type: 'text/javascript; charset=utf-8', body: TLSRPT_JS },
};

function intParam(url: URL, name: string, dflt: number, max: number): number {
  const v = url.searchParams.get(name);
  if (v === null) return dflt;
  if (!/^\d{1,6}$/.test(v)) throw new HttpError(400, `${name} must be a whole number`);
  return Math.min(max, Math.max(1, Number(v)));
}

export async function startAdmin(deps: AdminDeps): Promise<RunningAdmin> {
  const { config, stats, metrics, log } = deps;
  const clock = deps.clock ?? Date.now;
  if (!config.tokenFile) throw new Error('admin.tokenFile: no token file given. Fix: set admin.tokenFile to a file holding a random token');
  const token = loadToken(config.tokenFile);
  if (token.readableByOthers) log.warn({ event: 'admin-token-readable', file: config.tokenFile }, `admin.tokenFile ${config.tokenFile} is readable by other users; chmod 600 it`);

  const queueFigures = async (): Promise<Record<string, unknown> | null> => {
    if (!deps.queueStats) return null;
    const f = await deps.queueStats();
    return { ...f, oldestAgeSeconds: f.oldestReceivedAt === null ? null : Math.max(0, Math.round((clock() - f.oldestReceivedAt) / 1000)) };
  };

  const breakers = async (): Promise<{ available: boolean; breakers: unknown[]; warnings?: unknown[] }> => {
    if (!deps.guardControl) return { available: false, breakers: [] };
    const warnings = deps.guardControl.warnings ? { warnings: [...(await deps.guardControl.warnings())] } : {};
    return { available: true, breakers: [...(await deps.guardControl.status())], ...warnings };
  };

  const queueAction = async (op: 'hold' | 'release' | 'delete' | 'flush', id?: string): Promise<unknown> => {
    const qc = deps.queueControl;
    if (!qc) throw new HttpError(501, 'queue actions are not available on this server');
    if (op === 'flush') return qc.flush();
    if (!id || !isQueueId(id)) throw new HttpError(400, 'not a queue id');
    const r = await qc[op](id);
    if (r.matched === 0) throw new HttpError(404, `no message ${id} where ${op} applies`);
    return r;
  };

  const sessions = new Sessions(clock);
  /** The JSON API; undefined when no route matches. `who` names the caller in log lines. */
  const route = async (method: string, url: URL, who: string): Promise<unknown> => {
    const p = url.pathname;
    const answered = await consoleRoute({ console: deps.queueConsole, outbound: deps.outbound, log }, method, url, who);
    if (answered !== undefined) return answered;
    if (method === 'GET') {
      switch (p) {
        case '/api/summary':
          return {
            now: clock(),
            queue: await queueFigures(),
            ...(deps.catalog ? { catalog: deps.catalog() } : {}),
            queueGrowth: deps.queueGrowth?.() ?? null,
            last24h: stats.totals(24),
            last7d: stats.totals(168),
            hours24: stats.hourly(24),
            hours168: stats.hourly(168),
            tunnels: stats.tunnels(),
            warnings: deps.warnings?.() ?? [],
            actions: { queue: deps.queueControl !== undefined, breakers: deps.guardControl !== undefined, console: deps.queueConsole !== undefined, outbound: deps.outbound !== undefined },
            outbound: deps.outbound ? await deps.outbound.status() : null,
          };
        case '/api/decisions':
          return { decisions: stats.decisions(intParam(url, 'limit', 50, 500)) };
        case '/api/top':
          return stats.top(intParam(url, 'hours', 24, 168), intParam(url, 'limit', 10, 100));
        case '/api/relayed':
          return { relayed: stats.relayed(intParam(url, 'limit', 50, 500)) };
        case '/api/queue':
          return { queue: await queueFigures(), ...(deps.catalog ? { catalog: deps.catalog() } : {}), actions: deps.queueControl !== undefined };
        case '/api/breakers':
          return breakers();
        case '/api/tunnels':
          return { tunnels: stats.tunnels() };
        case '/api/dmarc':
        case '/api/tlsrpt': {
          // The reports received at our rua, of either kind; unavailable when reading them is off.
          const days = intParam(url, 'days', 7, 90);
          const summary = p === '/api/dmarc' ? deps.dmarcReports : deps.tlsReports;
          return summary ? { available: true, days, ...(await summary(days * 86_400_000)) } : { available: false, days };
        }
        case '/api/users':
          return { users: deps.directory.listUsers().map((u) => ({ address: u.address, created: u.created.toISOString(), disabled: u.disabled })) };
        default:
          return undefined;
      }
    }
    if (method === 'POST') {
      if (p === '/api/queue/flush') return { result: await queueAction('flush') };
      const q = /^\/api\/queue\/([^/]+)\/(hold|release|delete)$/.exec(p);
      if (q) return { result: await queueAction(q[2] as 'hold' | 'release' | 'delete', q[1]) };
      const b = /^\/api\/breakers\/([^/]+)\/release$/.exec(p);
      if (b) {
        if (!deps.guardControl) throw new HttpError(501, 'the outbound guard is not connected to this server');
        let name: string;
        try {
          name = decodeURIComponent(b[1]!);
        } catch {
          throw new HttpError(400, 'bad breaker name');
        }
        const ok = await deps.guardControl.release(name);
        if (ok === false) throw new HttpError(404, `no breaker named ${JSON.stringify(name)}`);
        log.warn({ event: 'breaker-released', breaker: name, by: who }, `breaker ${name} released from the admin API by ${who}`);
        return { released: name };
      }
    }
    return undefined;
  };

  const send = (res: http.ServerResponse, status: number, type: string, body: string, extra: Record<string, string> = {}): void => {
    res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': type, 'Content-Length': String(Buffer.byteLength(body)), ...extra });
    res.end(body);
  };
  const json = (res: http.ServerResponse, status: number, body: unknown, extra?: Record<string, string>): void => send(res, status, 'application/json; charset=utf-8', `${JSON.stringify(body)}\n`, extra);

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<number> => {
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', 'http://admin.invalid');
    const page = STATIC[url.pathname];
    if (page) {
      if (method !== 'GET' && method !== 'HEAD') {
        json(res, 405, { error: 'method not allowed' }, { Allow: 'GET, HEAD' });
        return 405;
      }
      send(res, 200, page.type, page.body);
      return 200;
    }
    const isMetrics = url.pathname === '/metrics';
    const bearer = token.check(req.headers.authorization);
    // The session cookie (Path=/api) stands in for the token on the API, never on /metrics.
    const session: Session | undefined = isMetrics ? undefined : sessions.of(req);
    if (method !== 'GET' && method !== 'HEAD') {
      const forged = checkForgery(req, session, method === 'POST' && url.pathname === '/api/session');
      if (forged) {
        log.warn({ event: 'admin-forgery-refused', remote: req.socket.remoteAddress, path: url.pathname, why: forged }, `admin POST refused: ${forged}`);
        json(res, 403, { error: `refused: ${forged}` });
        return 403;
      }
    }
    if (url.pathname === '/api/session') return sessionRoute(req, res, method, bearer, session);
    if ((!isMetrics || config.metricsRequireToken) && !bearer && !session) {
      log.warn({ event: 'admin-auth-failed', remote: req.socket.remoteAddress, method, path: url.pathname }, 'admin request without a valid token');
      json(res, 401, { error: 'a valid bearer token is required (Authorization: Bearer <token from admin.tokenFile>)' }, { 'WWW-Authenticate': 'Bearer realm="mailward"' });
      return 401;
    }
    if (isMetrics) {
      if (method !== 'GET') {
        json(res, 405, { error: 'method not allowed' }, { Allow: 'GET' });
        return 405;
      }
      send(res, 200, metrics.contentType, await metrics.text());
      return 200;
    }
    const who = session ? `dashboard session ${session.tag} (${session.remote})` : `admin-api token (${req.socket.remoteAddress ?? 'unknown address'})`;
    try {
      const body = await route(method, url, who);
      if (body === undefined) {
        json(res, 404, { error: `no such endpoint: ${method} ${url.pathname}` });
        return 404;
      }
      json(res, 200, body);
      return 200;
    } catch (err) {
      if (err instanceof HttpError) {
        json(res, err.status, { error: err.message });
        return err.status;
      }
      log.error({ event: 'admin-error', method, path: url.pathname, err: String(err) }, 'admin request failed');
      json(res, 500, { error: 'internal error; see the server log' });
      return 500;
    }
  };

  /**
   * POST /api/session: the bearer token once, for a session cookie and its request token. GET:
   * the request token of the session the cookie names (a reload). DELETE: sign out.
   */
  const sessionRoute = (req: http.IncomingMessage, res: http.ServerResponse, method: string, bearer: boolean, session: Session | undefined): number => {
    if (method === 'POST') {
      if (!bearer) {
        log.warn({ event: 'admin-auth-failed', remote: req.socket.remoteAddress, method, path: '/api/session' }, 'dashboard sign-in without a valid token');
        json(res, 401, { error: 'a valid bearer token is required (Authorization: Bearer <token from admin.tokenFile>)' }, { 'WWW-Authenticate': 'Bearer realm="mailward"' });
        return 401;
      }
      const opened = sessions.open(req.socket.remoteAddress ?? 'unknown address');
      log.info({ event: 'admin-session', session: opened.session.tag, remote: opened.session.remote }, `dashboard session ${opened.session.tag} opened from ${opened.session.remote}`);
      json(res, 200, { csrf: opened.session.csrf, session: opened.session.tag }, { 'Set-Cookie': opened.cookie });
      return 200;
    }
    if (!session) {
      json(res, 401, { error: 'no dashboard session; sign in with the token' });
      return 401;
    }
    if (method === 'GET') {
      json(res, 200, { csrf: session.csrf, session: session.tag });
      return 200;
    }
    if (method === 'DELETE') {
      // A DELETE is never sent cross-site without a CORS preflight, which this server never grants.
      sessions.close(session);
      json(res, 200, { closed: session.tag }, { 'Set-Cookie': CLEAR_COOKIE });
      return 200;
    }
    json(res, 405, { error: 'method not allowed' }, { Allow: 'GET, POST, DELETE' });
    return 405;
  };

  const server = http.createServer((req, res) => {
    const started = clock();
    // The request body is never read (no endpoint takes one); drain it so the socket can be reused.
    req.resume();
    handle(req, res).then(
      // Only the path: a query string could carry something an operator pasted by mistake.
      (status) => log.debug({ event: 'admin-request', method: req.method, path: (req.url ?? '/').split('?')[0], status, ms: clock() - started }, 'admin request'),
      (err: unknown) => {
        log.error({ event: 'admin-error', err: String(err) }, 'admin request failed');
        if (!res.headersSent) json(res, 500, { error: 'internal error' });
        else res.destroy();
      },
    );
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  const addr = await listenOn(server, config.host, config.port);
  log.info({ event: 'admin-listening', address: addr.address, port: addr.port }, `admin API and dashboard on http://${addr.address.includes(':') ? `[${addr.address}]` : addr.address}:${addr.port}/`);
  return {
    port: addr.port,
    address: addr.address,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
