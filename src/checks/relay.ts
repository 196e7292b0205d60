// The one place where relaying is decided. Mail for a domain that is not ours may leave only
// for an authenticated login, or for a client address inside a network the operator listed by
// hand. Nothing else counts: not loopback, not a private range, not the port, not a flag.
import { Replies } from '../core/reply.ts';
import { compileNetworks } from '../core/net.ts';

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
  // The one network parser (core/net.ts): a mapped range is its IPv4 range, and the client's
  // address is folded the same way (::ffff:192.0.2.1 is 192.0.2.1) before it is matched.
  const trusted = compileNetworks(trustedNetworks, 'relay.trustedNetworks');
  return {
    decide(f) {
      if (f.localDomain) return { allowed: true, reason: 'local-domain' };
      if (f.login) return { allowed: true, reason: `login:${f.login}` };
      const net = trusted.size > 0 ? trusted.match(f.clientAddress) : undefined;
      if (net) return { allowed: true, reason: `trusted-network:${net.text}`, network: net.text };
      return { allowed: false, reason: `client ${f.clientAddress} is neither authenticated nor in relay.trustedNetworks` };
    },
  };
}
