// The one place where relaying is decided. Mail for a domain that is not ours may leave only
// for an authenticated login, or for a client address inside a network the operator listed by
// hand. Nothing else counts: not loopback, not a private range, not the port, not a flag.
import { BlockList, isIP } from 'node:net';
import { Replies } from '../core/reply.ts';
import { parseCidr } from '../config/invariants.ts';

export type RelayDecision =
  /** `network`: the relay.trustedNetworks entry that allowed it, when that is what did. */
  | { readonly allowed: true; readonly reason: string; readonly network?: string }
  | { readonly allowed: false; readonly reason: string };

export interface RelayFacts {
  /** The recipient's domain is one of ours (mail to it is inbound, not relayed). */
  readonly localDomain: boolean;
  /** The authenticated login, if AUTH succeeded on this connection. */
  readonly login?: string;
  /** The real client address (after a trusted PROXY header), never the proxy's. */
  readonly clientAddress: string;
}

export interface RelayPolicy {
  decide(facts: RelayFacts): RelayDecision;
}

export const relayDeniedReply = Replies.relayDenied;

export function createRelayPolicy(trustedNetworks: readonly string[]): RelayPolicy {
  const trusted = new BlockList();
  const labels: Array<{ text: string; list: BlockList }> = [];
  for (const text of trustedNetworks) {
    const net = parseCidr(text);
    if (!net) throw new Error(`relay.trustedNetworks: ${JSON.stringify(text)} is not an address or CIDR range`);
    const type = net.family === 4 ? 'ipv4' : 'ipv6';
    const one = new BlockList();
    one.addSubnet(net.address, net.prefix, type);
    trusted.addSubnet(net.address, net.prefix, type);
    labels.push({ text, list: one });
  }
  const matches = (list: BlockList, addr: string): boolean => {
    const fam = isIP(addr);
    if (fam === 4) return list.check(addr, 'ipv4');
    if (fam === 6) return list.check(addr, 'ipv6');
    return false;
  };
  return {
    decide(f) {
      if (f.localDomain) return { allowed: true, reason: 'local-domain' };
      if (f.login) return { allowed: true, reason: `login:${f.login}` };
      if (labels.length > 0 && matches(trusted, f.clientAddress)) {
        const which = labels.find((l) => matches(l.list, f.clientAddress));
        const network = which?.text ?? '?';
        return { allowed: true, reason: `trusted-network:${network}`, network };
      }
      return { allowed: false, reason: `client ${f.clientAddress} is neither authenticated nor in relay.trustedNetworks` };
    },
  };
}
