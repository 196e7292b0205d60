// An HTTPS server on loopback playing mta-sts.<domain> for the MTA-STS tests (RFC 8461 §3.3):
// serves /.well-known/mta-sts.txt per domain from a map the test edits, with a certificate for
// every mta-sts.<domain> name from the test CA, and records each request.
import type { TestContext } from 'node:test';
import https from 'node:https';
import type net from 'node:net';
import type { TestCa } from '../harness/test-ca.ts';

export interface PolicyServer {
  readonly port: number;
  /** Policy text by domain (served at mta-sts.<domain>); absent: 404. */
  readonly policies: Map<string, string>;
  readonly requests: string[];
  contentType: string;
}

export async function startPolicyServer(t: TestContext, ca: TestCa, domains: readonly string[]): Promise<PolicyServer> {
  const { certPem, keyPem } = ca.issue(domains.map((d) => `mta-sts.${d}`));
  const state: PolicyServer = { port: 0, policies: new Map(), requests: [], contentType: 'text/plain' };
  const srv = https.createServer({ cert: certPem, key: keyPem }, (req, res) => {
    const host = String(req.headers.host ?? '');
    state.requests.push(`${host}${req.url ?? ''}`);
    const text = host.startsWith('mta-sts.') && req.url === '/.well-known/mta-sts.txt' ? state.policies.get(host.slice('mta-sts.'.length)) : undefined;
    if (text === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': state.contentType }).end(text);
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  (state as { port: number }).port = (srv.address() as net.AddressInfo).port;
  t.after(() => new Promise<void>((resolve) => srv.close(() => resolve())));
  return state;
}
