// The MTA-STS policy host for the local domains (RFC 8461 §3.3): HTTPS on mtaSts.serve.host:port
// with the server's certificate, answering GET /.well-known/mta-sts.txt for Host
// mta-sts.<local domain> with the policy `mailward dns records` announces; 404 for anything else.
import https from 'node:https';
import type tls from 'node:tls';
import type { Config } from '../config/load.ts';
import type { Logger } from '../observe/log.ts';
import { policyText } from '../core/mta-sts.ts';
import { servedPolicy } from '../doctor/dns-records.ts';
import { listenOn } from '../core/listen.ts';

export interface MtaStsServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startMtaStsServer(config: Config, secureContext: () => tls.SecureContext, log: Logger): Promise<MtaStsServer> {
  const s = config.mtaSts.serve;
  const body = policyText(servedPolicy(config));
  const hosts = new Set(config.domains.map((d) => `mta-sts.${d}`));
  const srv = https.createServer({ SNICallback: (_name, cb) => cb(null, secureContext()), minVersion: 'TLSv1.2' }, (req, res) => {
    const host = String(req.headers.host ?? '')
      .toLowerCase()
      .replace(/:\d+$/, '');
    const ok = req.method === 'GET' && hosts.has(host) && (req.url ?? '').split('?')[0] === '/.well-known/mta-sts.txt';
    if (!ok) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    // §3.2: text/plain; a short cache time so a changed policy is picked up by the next fetch.
    res.writeHead(200, { 'content-type': 'text/plain; charset=us-ascii', 'cache-control': 'max-age=300' }).end(body);
  });
  srv.on('tlsClientError', () => undefined);
  const { port } = await listenOn(srv, s.host, s.port).catch((err: NodeJS.ErrnoException) => {
    throw new Error(`mtaSts.serve: cannot listen on ${s.host}:${s.port} (${err.code ?? err.message}); free the port, set mtaSts.serve.port (e.g. behind a proxy), or give the server CAP_NET_BIND_SERVICE for 443`);
  });
  log.info({ event: 'listening', listener: 'mta-sts', address: s.host, port, mode: s.mode }, `MTA-STS policy (${s.mode}) served on https://${s.host}:${port}/.well-known/mta-sts.txt`);
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        srv.close(() => resolve());
        srv.closeAllConnections();
      }),
  };
}
