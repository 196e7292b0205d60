// The cells of one message in a catalog snapshot (snapshot.ts writes them, catalog.ts loads them
// into its columns without an object per message): held, receivedAt, sender, login, recipient
// count; then per recipient: address, mailbox, status, nextAttemptAt. Strings are indexes into
// the snapshot's string table.
import type { RecipientStatus } from './envelope.ts';

export const STATUS_CODE: Readonly<Record<RecipientStatus, number>> = { pending: 0, deferred: 1, delivered: 2, bounced: 3 };
export const STATUS_NAME: readonly RecipientStatus[] = ['pending', 'deferred', 'delivered', 'bounced'];
export const PENDING = 0;
export const DEFERRED = 1;
/** Cell offsets in a message's row. */
export const C_HELD = 0;
export const C_RECEIVED = 1;
export const C_SENDER = 2;
export const C_LOGIN = 3;
export const C_COUNT = 4;
/** Cells before the first recipient's, and per recipient. */
export const HEAD = 5;
export const PER_RECIPIENT = 4;
/** A mailbox cell: no mailbox, or the same as the address (else a string index). */
export const MAILBOX_NONE = -1;
export const MAILBOX_SAME = -2;
export const LOGIN_NONE = -1;
