// A real server for the guard's end-to-end tests: remote mail stays queued (no DNS zone, so each
// remote recipient is deferred, and retried only after an hour), the admin API is on with a token,
// and a logged-in submissions dialog is open for the test's first user.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { loginPlain } from '../harness/auth.ts';
import type { Dialog } from '../harness/dial.ts';
import { startDns } from '../harness/dns.ts';
import { startServer, type TestServer } from '../harness/server.ts';

export const ADMIN_TOKEN = 'a-long-random-admin-token-0123456789';

export interface DeferringServer {
  readonly srv: TestServer;
  /** Logged in as the first user on the submissions listener. */
  readonly c: Dialog;
  /** The admin API's base URL and the headers that authorize a call. */
  readonly base: string;
  readonly auth: { readonly headers: { readonly authorization: string } };
}

export async function startDeferringServer(t: TestContext, o: { users: Array<[string, string]>; guard: Record<string, unknown> }): Promise<DeferringServer> {
  const dns = await startDns(t, {});
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-guard-e2e-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'token'), `${ADMIN_TOKEN}\n`, { mode: 0o600 });
  const srv = await startServer(t, {
    users: o.users,
    config: {
      dns: { servers: [dns.address], timeout: 500, tries: 1 },
      queue: { fsync: false, minBackoff: '1h', maxBackoff: '1h' },
      checks: { 'outbound-guard': o.guard },
      admin: { enabled: true, port: 0, tokenFile: path.join(dir, 'token') },
    },
  });
  const [user, password] = o.users[0]!;
  const c = await loginPlain(srv.port('submissions'), user, password, { helo: 'laptop' });
  return { srv, c, base: `http://127.0.0.1:${srv.server.adminPort()}`, auth: { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } } };
}
