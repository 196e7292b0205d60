// The incident console's API: the queue grouped by sender, login, recipient domain or state (from
// the running queue's catalog, no spool read), a count before each bulk command (the confirmation
// shows it), bulk hold / release / delete of one filter, one message in full, and the "stop all
// outbound" switch. GETs change nothing; every POST passed the forgery checks (session.ts) first.
// Each bulk command and each switch writes one log line naming the session and the address.
import type { Logger } from '../../observe/log.ts';
import { isQueueId } from '../../core/ids.ts';
import type { MessageState, QueueFilter } from '../../queue/filter.ts';
import type { OutboundControl, QueueConsole } from './controls.ts';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface ConsoleDeps {
  readonly console?: QueueConsole | undefined;
  readonly outbound?: OutboundControl | undefined;
  readonly log: Logger;
}

const STATES: readonly MessageState[] = ['held', 'deferred', 'pending'];
const FIELDS = ['sender', 'login', 'domain', 'recipient'] as const;
export const GROUPS = ['sender', 'login', 'domain', 'state'] as const;
export type GroupBy = (typeof GROUPS)[number];
const BULK = ['hold', 'release', 'delete'] as const;
type BulkOp = (typeof BULK)[number];

/** The filter in the query string (sender, login, domain, recipient, state). */
export function filterOf(url: URL): QueueFilter {
  const f: { -readonly [K in keyof QueueFilter]: QueueFilter[K] } = {};
  for (const k of FIELDS) {
    const v = url.searchParams.get(k);
    if (v === null) continue;
    if (v.length > 320) throw new ApiError(400, `${k} is longer than 320 characters`);
    f[k] = v;
  }
  const state = url.searchParams.get('state');
  if (state !== null && state !== '') {
    if (!(STATES as readonly string[]).includes(state)) throw new ApiError(400, `state must be one of ${STATES.join(', ')}`);
    f.state = state as MessageState;
  }
  return f;
}

const isEmpty = (f: QueueFilter): boolean => Object.keys(f).length === 0;

function bulkOp(v: string | null | undefined): BulkOp {
  if (!v || !(BULK as readonly string[]).includes(v)) throw new ApiError(400, `op must be one of ${BULK.join(', ')}`);
  return v as BulkOp;
}

/** Answers the console's routes; undefined when the path is not one of them. `who` names the caller for the log. */
export async function consoleRoute(d: ConsoleDeps, method: string, url: URL, who: string): Promise<unknown> {
  const p = url.pathname;
  const qc = (): QueueConsole => {
    if (!d.console) throw new ApiError(501, 'the queue console is not available on this server');
    return d.console;
  };
  const sw = (): OutboundControl => {
    if (!d.outbound) throw new ApiError(501, 'the outbound switch is not available on this server');
    return d.outbound;
  };
  if (method === 'GET') {
    if (p === '/api/queue/groups') {
      const by = url.searchParams.get('by') ?? 'sender';
      if (!(GROUPS as readonly string[]).includes(by)) throw new ApiError(400, `by must be one of ${GROUPS.join(', ')}`);
      const limit = Number(url.searchParams.get('limit') ?? '50');
      if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw new ApiError(400, 'limit must be a whole number from 1 to 500');
      const filter = filterOf(url);
      const s = await qc().summarize(filter, limit);
      const groups: ReadonlyArray<readonly [string, number]> =
        by === 'state' ? STATES.map((st) => [st, s[st]] as const).filter(([, n]) => n > 0) : by === 'sender' ? s.senders : by === 'login' ? s.logins : s.domains;
      const total = by === 'state' ? groups.length : by === 'sender' ? s.sendersTotal : by === 'login' ? s.loginsTotal : s.domainsTotal;
      return { by, filter, messages: s.messages, held: s.held, deferred: s.deferred, pending: s.pending, groups, groupsTotal: total };
    }
    if (p === '/api/queue/count') {
      const op = bulkOp(url.searchParams.get('op'));
      const filter = filterOf(url);
      if (isEmpty(filter)) throw new ApiError(400, 'choose a group or a filter first (sender, login, domain, recipient or state)');
      return { op, filter, matched: await qc().count(op, filter) };
    }
    const m = /^\/api\/queue\/message\/([^/]+)$/.exec(p);
    if (m) {
      if (!isQueueId(m[1]!)) throw new ApiError(400, 'not a queue id');
      const detail = await qc().message(m[1]!);
      if (!detail) throw new ApiError(404, `no queued or held message ${m[1]!}`);
      return { message: detail };
    }
    if (p === '/api/outbound') return { outbound: d.outbound ? await d.outbound.status() : null };
    return undefined;
  }
  if (method !== 'POST') return undefined;
  const bulk = /^\/api\/queue\/bulk\/([a-z]+)$/.exec(p);
  if (bulk) {
    const op = bulkOp(bulk[1]);
    const filter = filterOf(url);
    if (isEmpty(filter)) throw new ApiError(400, 'a bulk command needs a group or a filter (sender, login, domain, recipient or state)');
    // The count the operator confirmed: the log shows it beside what the command found.
    const confirmed = url.searchParams.get('confirmed');
    if (confirmed === null || !/^\d{1,9}$/.test(confirmed)) throw new ApiError(400, 'confirmed must be the count the operator confirmed (from /api/queue/count)');
    const result = await qc().bulk(op, filter, `${who} confirmed ${confirmed}`);
    return { op, filter, result };
  }
  const o = /^\/api\/outbound\/(stop|start)$/.exec(p);
  if (o) {
    const reason = (url.searchParams.get('reason') ?? '').slice(0, 200);
    const state = o[1] === 'stop' ? await sw().stop(who, reason || undefined) : await sw().start(who);
    return { outbound: state };
  }
  return undefined;
}
