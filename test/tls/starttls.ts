// A STARTTLS session on a test server's MX listener, and the certificate the server offered in it.
import type { TLSSocket } from 'node:tls';
import { dial, type Dialog } from '../harness/dial.ts';

export async function starttls(port: number): Promise<{ c: Dialog; fingerprint: string; issuer: string }> {
  const c = await dial(port);
  await c.expect('220');
  await c.say('EHLO client.example.net').expect('250');
  await c.say('STARTTLS').expect('220');
  await c.startTls();
  const peer = (c.socket as TLSSocket).getPeerCertificate();
  await c.say('EHLO client.example.net').expect('250');
  return { c, fingerprint: peer.fingerprint256, issuer: JSON.stringify(peer.issuer) };
}
