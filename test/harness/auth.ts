// The AUTH PLAIN dialogue of the submission tests (RFC 4954 §4, RFC 4616): the command, and a
// session logged in over implicit TLS, ready for MAIL FROM.
import { dial, type Dialog } from './dial.ts';

/** The AUTH PLAIN command with its initial response for `user` and `pass`. */
export const authPlain = (user: string, pass: string): string => `AUTH PLAIN ${Buffer.from(`\0${user}\0${pass}`).toString('base64')}`;

/** Dials `port` (implicit TLS unless `tls: false`), says EHLO and logs in; expects 235. */
export async function loginPlain(port: number, user: string, pass: string, opts: { readonly tls?: boolean; readonly helo?: string } = {}): Promise<Dialog> {
  const c = await dial(port, { tls: opts.tls ?? true });
  await c.expect('220');
  await c.say(`EHLO ${opts.helo ?? 'laptop.example'}`).expect('250');
  await c.say(authPlain(user, pass)).expect('235');
  return c;
}
