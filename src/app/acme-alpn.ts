// The tls-alpn-01 responder (RFC 8737): a TLS listener (port 443, as the CA connects to it) that,
// for a handshake offering only the "acme-tls/1" protocol, presents the self-signed validation
// certificate of the name asked for by SNI (it carries the key authorization's digest in the
// critical acmeIdentifier extension, §3) and then closes. Other handshakes are refused.
import tls from 'node:tls';
import type { Logger } from '../observe/log.ts';
import { listenOn } from '../core/listen.ts';

const ACME_TLS = 'acme-tls/1';

export interface TlsAlpn01Listener {
  readonly address: string;
  readonly port: number;
  /** The validation certificate and key for `name` while its authorization is pending. */
  set(name: string, pair: { readonly cert: string; readonly key: string }): void;
  remove(name: string): void;
  close(): Promise<void>;
}

export async function startTlsAlpn01(o: { readonly host: string; readonly port: number; readonly log: Logger }): Promise<TlsAlpn01Listener> {
  const contexts = new Map<string, tls.SecureContext>();
  const server = tls.createServer({
    // RFC 8737 §3: the server must refuse a handshake that does not offer acme-tls/1, and must
    // not negotiate anything else on it.
    ALPNCallback: ({ protocols }) => (protocols.includes(ACME_TLS) ? ACME_TLS : undefined),
    SNICallback: (servername, cb) => {
      const ctx = contexts.get(servername.toLowerCase());
      o.log.debug({ event: 'acme-tls-alpn', servername, answered: ctx !== undefined }, 'tls-alpn-01 handshake');
      if (ctx) cb(null, ctx);
      else cb(new Error(`no tls-alpn-01 challenge pending for ${servername}`));
    },
  });
  // The handshake is the whole answer: nothing is read or written after it.
  server.on('secureConnection', (socket) => socket.end());
  server.on('tlsClientError', (err, socket) => {
    o.log.debug({ event: 'acme-tls-alpn', err: err.message }, 'tls-alpn-01 handshake refused');
    socket.destroy();
  });
  const addr = await listenOn(server, o.host, o.port);
  return {
    address: addr.address,
    port: addr.port,
    set: (name, pair) => void contexts.set(name.toLowerCase(), tls.createSecureContext({ cert: pair.cert, key: pair.key })),
    remove: (name) => void contexts.delete(name.toLowerCase()),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
