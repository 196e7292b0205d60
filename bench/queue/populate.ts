// Writes a queue of the incident's shape straight into a spool folder, in the spool's real file
// format (prefix, header, body, state records), without fsync: how the queue and start-up
// benchmarks (and the start-up test) make 400,000 messages in seconds.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { newQueueId } from '../../src/core/ids.ts';
import { encodeHeader, encodePrefix, encodeStateRecord, shortHash } from '../../src/queue/format.ts';
import type { Envelope } from '../../src/queue/envelope.ts';
import { BUCKETS, SPOOL_AREAS } from '../../src/queue/intake.ts';

export const SPAMMER = 'bulk@spam-source.example';
export const SPAM_SHARE = 0.75;

export interface PopulateOptions {
  /**
   * Give every message a deferred state record (retry in an hour), so none is due; by default two
   * of three have one, as in a queue stuck for hours.
   */
  readonly allDeferred?: boolean;
  /**
   * State records on each deferred message (default 1): a queue stuck for days has one per retry,
   * and every reader of the file replays them all.
   */
  readonly records?: number;
}

export function body(i: number, from: string, to: string): Buffer {
  const filler = 'Limited offer! Best prices on everything you never wanted. '.repeat(20);
  return Buffer.from(
    `Received: from client${i % 250}.example.net ([198.51.100.${i % 250}])\r\n\tby mx.example.org (Mailward) with ESMTPSA id X\r\n\tfor <${to}>; Tue, 1 Jul 2025 10:00:00 +0000\r\n` +
      `From: <${from}>\r\nTo: <${to}>\r\nSubject: Offer ${i}\r\nMessage-ID: <${i}@spam-source.example>\r\n\r\n${filler}\r\n`,
  );
}

/** Writes `total` messages straight into queue/<bucket>/<id>; 75% come from SPAMMER. */
export function populate(spoolDir: string, total: number, opts: PopulateOptions = {}): { bytes: number; spam: number } {
  for (const area of ['incoming', 'corrupt']) mkdirSync(path.join(spoolDir, area), { recursive: true });
  for (const area of SPOOL_AREAS) for (const b of BUCKETS) mkdirSync(path.join(spoolDir, area, b), { recursive: true });
  const now = Date.now();
  let bytes = 0;
  let spam = 0;
  for (let i = 0; i < total; i++) {
    const isSpam = i % 4 !== 3 && spam < total * SPAM_SHARE;
    if (isSpam) spam++;
    const from = isSpam ? SPAMMER : `user${i % 997}@sender${i % 89}.example`;
    const to = `rcpt${i % 5003}@dest${i % 211}.example`;
    // Arrivals spread over two days: the buckets fill evenly, as in a real queue.
    const receivedAt = now - Math.floor(((total - i) / total) * 2 * 86_400_000);
    const id = newQueueId(receivedAt);
    const env: Omit<Envelope, 'size'> = {
      id,
      receivedAt,
      mailFrom: from,
      recipients: [{ address: to, mailbox: to, transport: 'remote' }],
      client: { address: `198.51.100.${i % 250}`, helo: 'client.example.net', login: 'compromised@example.org', listener: 'submission', sessionId: `s${i}` },
      relayReason: 'login:compromised@example.org',
      smtputf8: false,
      body: '8BITMIME',
    };
    const header = encodeHeader(env);
    const msg = body(i, from, to);
    const parts = [encodePrefix({ headerLength: header.length, bodyLength: msg.length, headerHash: shortHash(header), bodyHash: shortHash(msg) }), header, Buffer.from('\n'), msg];
    // Most of a stuck queue has been tried before: one state record on two messages of three.
    if (opts.allDeferred || i % 3 !== 0) {
      const records = opts.records ?? 1;
      for (let a = 1; a <= records; a++) parts.push(encodeStateRecord([{ index: 0, state: { status: 'deferred', attempts: records === 1 ? 3 : a, nextAttemptAt: now + 3_600_000, lastReply: '451 4.7.1 Try again later', updatedAt: now - (records - a) * 60_000 } }]));
    }
    const file = Buffer.concat(parts);
    bytes += file.length;
    writeFileSync(path.join(spoolDir, 'queue', id[7]!, id), file);
  }
  return { bytes, spam };
}
