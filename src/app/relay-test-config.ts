// `mailward relay-test --config FILE`: judges the trusted networks a config file holds, read as
// written (a config the server refuses is judged too), with the one network parser the server
// matches with (core/net.ts). A range that holds loopback, or any range written in IPv4-mapped
// form, is reported as an open relay: every tunnel or proxy on the host reaches loopback, and a
// mapped range is an IPv4 range that reads as IPv6 to every other tool.
import { isIPv6 } from 'node:net';
import { inNetwork, isNetworkProblem, parseNetwork, readNetwork, type Network } from '../core/net.ts';
import { readConfigFile } from '../config/load.ts';

export interface TrustFinding {
  readonly setting: string;
  readonly value: string;
  /** The range the server reads it as, when it reads it at all. */
  readonly range?: string;
  readonly openRelay: boolean;
  readonly message: string;
}

const LOOPBACK: readonly Network[] = [parseNetwork('127.0.0.0/8')!, parseNetwork('::1')!];
const holdsLoopback = (n: Network): boolean => LOOPBACK.some((l) => l.family === n.family && inNetwork(l, { ...n, prefix: Math.min(n.prefix, l.prefix) }));

/** Findings for relay.trustedNetworks of the parsed config (a YAML mapping as written). */
export function auditTrust(raw: Record<string, unknown>): TrustFinding[] {
  const relay = raw.relay as { trustedNetworks?: unknown } | undefined;
  const list = Array.isArray(relay?.trustedNetworks) ? relay.trustedNetworks : [];
  return list.map((v, i): TrustFinding => {
    const setting = `relay.trustedNetworks[${i}]`;
    const value = String(v);
    const n = readNetwork(value);
    if (isNetworkProblem(n)) return { setting, value, openRelay: false, message: `refused at load: ${n.problem}. Fix: ${n.fix}` };
    const mapped = n.family === 4 && isIPv6(value.trim().replace(/^\[(?:ipv6:)?/i, '').replace(/\](?=\/|$)/, '').split('/')[0] ?? '');
    if (holdsLoopback(n)) return { setting, value, range: n.text, openRelay: true, message: `OPEN RELAY: ${JSON.stringify(value)} is ${n.text}, which holds loopback: every tunnel, port forward or proxy on the host connects from there and may relay. Fix: remove it; let local programs log in` };
    if (mapped) return { setting, value, range: n.text, openRelay: true, message: `OPEN RELAY for IPv4: ${JSON.stringify(value)} is the IPv4 range ${n.text} written in IPv4-mapped form; every IPv4 client in it may relay. Fix: write ${n.text} if that is meant, or remove it` };
    return { setting, value, range: n.text, openRelay: false, message: `trusts ${n.text}` };
  });
}

export const auditTrustFile = (file: string): TrustFinding[] => auditTrust(readConfigFile(file));

/** The client forms a relay test can produce from this host against a loopback target. */
export const LOOPBACK_FORMS = ['127.0.0.1', '::1', '::ffff:127.0.0.1'] as const;
