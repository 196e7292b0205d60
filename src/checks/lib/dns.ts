// DNS helpers shared by the checks: a query that gives up when the check's signal aborts, the
// sorting of resolver errors into "no such name", "no such record" and "could not find out",
// and the adapter that lets mailauth ask our configured resolver.
import type { Resolver } from 'node:dns/promises';

/** What a failed lookup means for policy. */
export type DnsFailure =
  /** NXDOMAIN: the name does not exist (RFC 1035 §4.1.1 RCODE 3). */
  | 'nxdomain'
  /** The name exists but has no record of that type (NOERROR with no answer, RFC 2308 §2.2). */
  | 'nodata'
  /** SERVFAIL, REFUSED, time-out, a cancelled query…: we could not find out; try later. */
  | 'temporary';

export function classify(err: unknown): DnsFailure {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'ENOTFOUND') return 'nxdomain';
  if (code === 'ENODATA') return 'nodata';
  return 'temporary';
}

export function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  return err instanceof Error ? err.message : String(err);
}

/** An error shaped like the resolver's own, so `classify` treats an abort as temporary. */
function aborted(signal: AbortSignal): Error {
  const err = new Error(`DNS query abandoned: ${signal.reason instanceof Error ? signal.reason.message : 'deadline passed'}`);
  (err as Error & { code: string }).code = 'ECANCELLED';
  return err;
}

/**
 * Waits for `query` unless `signal` aborts first. The node Resolver can only cancel all of its
 * queries at once (and it is shared), so an abandoned query is left to its own time-out.
 */
export function withSignal<T>(query: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    query.catch(() => undefined);
    return Promise.reject(aborted(signal));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(aborted(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    query.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/** mailauth's resolver signature: `(name, rrtype) => records`, errors with the node codes. */
export type MailauthResolver = (name: string, rrtype: string) => Promise<string[][] | string[]>;

const MAILAUTH_TYPES = new Set(['A', 'AAAA', 'MX', 'TXT', 'PTR', 'CNAME', 'NS']);

/** Lets mailauth ask our configured resolver, giving up when `signal` aborts. */
export function mailauthResolver(dns: Resolver, signal: AbortSignal): MailauthResolver {
  return async (name, rrtype) => {
    const type = rrtype.toUpperCase();
    if (!MAILAUTH_TYPES.has(type)) {
      const err = new Error(`record type ${rrtype} is not looked up`);
      (err as Error & { code: string }).code = 'ENOTIMP';
      throw err;
    }
    // dns/promises' resolve() is typed per record type; mailauth only reads these shapes.
    return (await withSignal(dns.resolve(name, type) as Promise<unknown>, signal)) as string[][] | string[];
  };
}
