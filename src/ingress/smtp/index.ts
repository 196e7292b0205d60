// Public face of the SMTP protocol engine: start a session on an accepted socket, upgrade a
// socket to TLS, and the contract types shared with the session logic.
export { SmtpConnection, startSmtpSession } from './connection.ts';
export { upgradeToTls, TlsHandshakeError, contextOf, type TlsContextSource } from './tls.ts';
export type * from './types.ts';
