// The http-01 responder (RFC 8555 §8.3): a plain HTTP listener (port 80, as the CA connects to
// it) that answers GET /.well-known/acme-challenge/TOKEN with the key authorization while an
// order is pending, and 404 to everything else. It serves nothing else, so it is no web server.
import http from 'node:http';
import type { Logger } from '../observe/log.ts';
import { listenOn } from '../core/listen.ts';

const PREFIX = '/.well-known/acme-challenge/';
// RFC 8555 §8.1: tokens are base64url, at least 128 bits of entropy.
const TOKEN = /^[A-Za-z0-9_-]{16,256}$/;

export interface Http01Listener {
  readonly address: string;
  readonly port: number;
  set(token: string, keyAuthorization: string): void;
  remove(token: string): void;
  close(): Promise<void>;
}

export async function startHttp01(o: { readonly host: string; readonly port: number; readonly log: Logger }): Promise<Http01Listener> {
  const answers = new Map<string, string>();
  const server = http.createServer((req, res) => {
    const url = req.url ?? '';
    const token = url.startsWith(PREFIX) ? url.slice(PREFIX.length) : undefined;
    const answer = token !== undefined && TOKEN.test(token) && (req.method === 'GET' || req.method === 'HEAD') ? answers.get(token) : undefined;
    o.log.debug({ event: 'acme-http', method: req.method, path: url.slice(0, 200), peer: req.socket.remoteAddress, answered: answer !== undefined }, 'http-01 request');
    if (answer === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain', connection: 'close' }).end('not found\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': Buffer.byteLength(answer), connection: 'close' }).end(req.method === 'HEAD' ? undefined : answer);
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 15_000;
  const addr = await listenOn(server, o.host, o.port);
  return {
    address: addr.address,
    port: addr.port,
    set: (token, keyAuthorization) => void answers.set(token, keyAuthorization),
    remove: (token) => void answers.delete(token),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
