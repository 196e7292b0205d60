// SASL pieces for AUTH (RFC 4954): strict base64 decoding of client responses and the PLAIN
// (RFC 4616) message layout, and `collectCredentials`, the 334 challenge/response exchange.
import { reply, type SmtpReply } from '../../core/reply.ts';

// RFC 4954 §4: responses are base64 (RFC 4648 §4) without line breaks; refuse anything else
// rather than let Buffer.from() silently skip invalid characters.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Decodes a client response; undefined when it is not valid base64. "=" is the empty response. */
export function decodeBase64(text: string): Buffer | undefined {
  if (text === '=') return Buffer.alloc(0);
  if (!BASE64.test(text)) return undefined;
  return Buffer.from(text, 'base64');
}

export interface PlainCredentials {
  readonly authzid: string;
  readonly username: string;
  readonly password: string;
}

/** RFC 4616 §2: message = [authzid] NUL authcid NUL passwd. Undefined when malformed. */
export function parsePlain(msg: Buffer): PlainCredentials | undefined {
  const a = msg.indexOf(0);
  if (a === -1) return undefined;
  const b = msg.indexOf(0, a + 1);
  if (b === -1 || msg.indexOf(0, b + 1) !== -1) return undefined;
  const username = msg.toString('utf8', a + 1, b);
  const password = msg.toString('utf8', b + 1);
  if (username.length === 0 || password.length === 0) return undefined;
  return { authzid: msg.toString('utf8', 0, a), username, password };
}

/** base64 of the LOGIN prompts "Username:" and "Password:" (draft-murchison-sasl-login). */
export const LOGIN_USERNAME_PROMPT = Buffer.from('Username:').toString('base64');
export const LOGIN_PASSWORD_PROMPT = Buffer.from('Password:').toString('base64');

/** What the connection provides to run the exchange. */
export interface SaslIo {
  /**
   * Sends `334 <prompt>` and returns the client's response line; null when the connection went
   * away, or a reply (e.g. line too long) that ends the exchange.
   */
  challenge(prompt: string): Promise<string | SmtpReply | null>;
}

export type SaslOutcome =
  | { readonly kind: 'credentials'; readonly mechanism: 'PLAIN' | 'LOGIN'; readonly username: string; readonly password: string; readonly authzid: string }
  | { readonly kind: 'reply'; readonly reply: SmtpReply }
  | { readonly kind: 'gone' };

const CANCELLED = reply(501, '5.7.0', 'Authentication cancelled');
const BAD_BASE64 = reply(501, '5.5.2', 'Cannot decode response');
const BAD_PLAIN = reply(501, '5.5.2', 'Malformed PLAIN response');

/**
 * Collects credentials for AUTH PLAIN or LOGIN (RFC 4954 §4), with an optional initial response.
 * "*" cancels (501); invalid base64 gets 501 5.5.2.
 */
export async function collectCredentials(io: SaslIo, mechanism: 'PLAIN' | 'LOGIN', initial: string | undefined): Promise<SaslOutcome> {
  const ask = async (prompt: string, given: string | undefined): Promise<Buffer | SaslOutcome> => {
    let line: string | SmtpReply | null;
    if (given !== undefined) line = given;
    else line = await io.challenge(prompt);
    if (line === null) return { kind: 'gone' };
    if (typeof line !== 'string') return { kind: 'reply', reply: line };
    if (line === '*') return { kind: 'reply', reply: CANCELLED };
    const decoded = decodeBase64(line);
    return decoded ?? { kind: 'reply', reply: BAD_BASE64 };
  };
  if (mechanism === 'PLAIN') {
    const msg = await ask('', initial);
    if (!Buffer.isBuffer(msg)) return msg;
    const creds = parsePlain(msg);
    if (!creds) return { kind: 'reply', reply: BAD_PLAIN };
    return { kind: 'credentials', mechanism, ...creds };
  }
  const user = await ask(LOGIN_USERNAME_PROMPT, initial);
  if (!Buffer.isBuffer(user)) return user;
  const pass = await ask(LOGIN_PASSWORD_PROMPT, undefined);
  if (!Buffer.isBuffer(pass)) return pass;
  return { kind: 'credentials', mechanism, username: user.toString('utf8'), password: pass.toString('utf8'), authzid: '' };
}
