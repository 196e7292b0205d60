// The canonical form under which the directory stores and looks up addresses: the local part
// lower-cased, the domain normalised (A-labels, no trailing dot). RFC 5321 §2.4 leaves local-part
// case to the receiving host; like nearly every mail system we ignore it.
import { parseMailbox } from '../core/address.ts';

export interface AddressKey {
  /** Canonical `local@domain`, the primary key in the tables. */
  readonly key: string;
  /** The address as parsed, local-part case kept: the form to forward to a foreign domain. */
  readonly address: string;
  readonly local: string;
  readonly domain: string;
}

export function addressKey(text: string): AddressKey | { readonly error: string } {
  const r = parseMailbox(text);
  if (!r.ok) return { error: r.error };
  const local = r.mailbox.local.toLowerCase();
  return { key: `${local}@${r.mailbox.domain}`, address: r.mailbox.address, local, domain: r.mailbox.domain };
}

export const isAddressKey = (x: AddressKey | { readonly error: string }): x is AddressKey => 'key' in x;

/**
 * `user+tag@d` → `user@d` for subaddressing (RFC 5233 calls the tag a "detail"). Any character
 * of `delimiters` splits, at its first occurrence; a quoted local part or one that starts with a
 * delimiter is left alone.
 */
export function subaddressBase(k: AddressKey, delimiters: string): string | undefined {
  if (delimiters === '' || k.local.startsWith('"')) return undefined;
  let cut = -1;
  for (const ch of delimiters) {
    const i = k.local.indexOf(ch);
    if (i > 0 && (cut < 0 || i < cut)) cut = i;
  }
  return cut > 0 ? `${k.local.slice(0, cut)}@${k.domain}` : undefined;
}
