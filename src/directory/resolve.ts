// Expands a local address through aliases to final mailboxes and forwarded foreign addresses.
// Pure: it reads the directory through a lookup function, so it works the same for RCPT TO and
// for the send-as check. Loop-safe: every address is expanded at most once per resolution.
import { addressKey, isAddressKey, subaddressBase, type AddressKey } from './address-key.ts';

export type Entry =
  | { readonly kind: 'user'; readonly disabled: boolean }
  | { readonly kind: 'alias'; readonly targets: readonly string[] };

export interface Lookup {
  /** The entry stored under exactly this key (`local@domain`, or `@domain` for a catch-all). */
  entry(key: string): Entry | undefined;
  isLocalDomain(domain: string): boolean;
  /** Subaddress delimiter characters, '' for none. */
  readonly delimiters: string;
}

export interface Expansion {
  /** Canonical addresses of local mailboxes. */
  readonly mailboxes: string[];
  /** Foreign addresses to forward to, local-part case as written in the alias. */
  readonly external: string[];
  /** Local alias targets that led nowhere (no such mailbox, disabled, too deep): for the log. */
  readonly dropped: string[];
}

// Postfix's virtual_alias_recursion_limit is 1000; aliases in a self-hosted directory are shallow,
// and a deep chain is almost surely a mistake.
export const MAX_DEPTH = 20;
/** Distinct addresses one resolution may visit, against an alias fan-out bomb. */
export const MAX_VISITS = 1000;

/**
 * Which entry answers for an address: the exact address, then its subaddress base
 * (`user+tag` → `user`), then the domain's catch-all `@domain`. Returns the key that matched.
 */
function find(lookup: Lookup, k: AddressKey): { key: string; entry: Entry } | undefined {
  const base = subaddressBase(k, lookup.delimiters);
  for (const key of [k.key, base, `@${k.domain}`]) {
    if (key === undefined) continue;
    const entry = lookup.entry(key);
    if (entry) return { key, entry };
  }
  return undefined;
}

/** Expands a local address; undefined when nothing in the directory answers for it. */
export function expand(lookup: Lookup, start: AddressKey): Expansion | undefined {
  const mailboxes = new Set<string>();
  const external = new Set<string>();
  const dropped = new Set<string>();
  const visited = new Set<string>();

  const walk = (k: AddressKey, depth: number): boolean => {
    // Seen before: either expanded already or a loop back to an address being expanded; in both
    // cases it adds nothing new.
    if (visited.has(k.key)) return true;
    if (depth > MAX_DEPTH || visited.size >= MAX_VISITS) return false;
    visited.add(k.key);
    const hit = find(lookup, k);
    if (!hit) return false;
    if (hit.entry.kind === 'user') {
      if (hit.entry.disabled) return false;
      mailboxes.add(hit.key);
      return true;
    }
    for (const target of hit.entry.targets) {
      const t = addressKey(target);
      if (!isAddressKey(t)) dropped.add(target);
      else if (!lookup.isLocalDomain(t.domain)) external.add(t.address);
      else if (!walk(t, depth + 1)) dropped.add(t.key);
    }
    return true;
  };

  if (!walk(start, 0)) return undefined;
  return { mailboxes: [...mailboxes], external: [...external], dropped: [...dropped] };
}
