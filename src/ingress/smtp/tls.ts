// Server-side TLS handshake on an accepted socket: used for STARTTLS (RFC 3207) and by the
// listener for implicit TLS (RFC 8314). Resolves once the handshake is done, bounded in time.
import { TLSSocket, type SecureContext } from 'node:tls';
import type { Socket } from 'node:net';

/** Upper bound for a handshake, whatever the command time-out. */
export const HANDSHAKE_TIMEOUT_MS = 30_000;

/**
 * Where a listener takes its certificate from at each handshake: a holder whose context is
 * swapped when the certificate is renewed, so new sessions get the new one and sessions under
 * way keep the one they negotiated (app/certificates.ts).
 */
export interface TlsContextSource {
  current(): SecureContext;
}

/** The context to hand to the next handshake. */
export function contextOf(tls: SecureContext | TlsContextSource): SecureContext {
  return typeof (tls as Partial<TlsContextSource>).current === 'function' ? (tls as TlsContextSource).current() : (tls as SecureContext);
}

export class TlsHandshakeError extends Error {
  constructor(readonly reason: string) {
    super(`TLS handshake failed: ${reason}`);
    this.name = 'TlsHandshakeError';
  }
}

/**
 * Wraps `socket` in a server TLSSocket and waits for the handshake. Bytes already buffered in
 * `socket`'s readable state (e.g. unshifted after a PROXY header) are fed to TLS by Node.
 */
export function upgradeToTls(socket: Socket, tls: SecureContext | TlsContextSource, timeoutMs: number): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const tlsSocket = new TLSSocket(socket, { isServer: true, secureContext: contextOf(tls), requestCert: false, rejectUnauthorized: false });
    let settled = false;
    const settle = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      tlsSocket.off('secure', onSecure);
      tlsSocket.off('close', onClose);
      tlsSocket.off('end', onClose);
      if (err) {
        tlsSocket.destroy();
        reject(err);
      } else {
        resolve(tlsSocket);
      }
    };
    const onSecure = (): void => settle();
    const onClose = (): void => settle(new TlsHandshakeError('connection closed during the handshake'));
    // A permanent listener: a TLS error after the handshake must not crash the process either.
    tlsSocket.on('error', (err: Error) => settle(new TlsHandshakeError(err.message)));
    const timer = setTimeout(() => settle(new TlsHandshakeError(`no handshake within ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
    tlsSocket.once('secure', onSecure);
    tlsSocket.once('close', onClose);
    // On a half-open socket (the listeners allow half-open TCP) a client that sends FIN gives
    // 'end' and no 'close': no handshake can follow, so do not wait for the time-out.
    tlsSocket.once('end', onClose);
  });
}
