// Reads one framed policy request into typed facts: the request type and protocol state are
// required and checked; every attribute Postfix 3.x sends is taken as text, unknown ones ignored.
// A request that cannot be read yields a problem to log and answer, never a guess.
import { isIP } from 'node:net';
import { PROTOCOL_STATES, type ProtocolState } from '../config/policyd-schema.ts';

export interface PolicyRequest {
  readonly state: ProtocolState;
  /** SMTP, ESMTP, LMTP... */
  readonly protocolName: string;
  readonly clientAddress: string;
  readonly clientPort: number;
  readonly clientName: string;
  readonly reverseClientName: string;
  readonly heloName: string;
  /** As Postfix has it: no angle brackets; '' for the null sender <>. */
  readonly sender: string;
  readonly recipient: string;
  readonly recipientCount: number;
  readonly queueId: string;
  /** Same for every request of one mail transaction (SMTPD_POLICY_README). */
  readonly instance: string;
  readonly saslMethod: string;
  readonly saslUsername: string;
  readonly saslSender: string;
  readonly size: number;
  readonly encryptionProtocol: string;
  readonly encryptionCipher: string;
  readonly ccertSubject: string;
  readonly etrnDomain: string;
  readonly stress: boolean;
  readonly policyContext: string;
  readonly serverAddress: string;
  readonly serverPort: number;
}

export type ReadResult = { readonly ok: true; readonly request: PolicyRequest } | { readonly ok: false; readonly problem: string };

const STATES: ReadonlySet<string> = new Set(PROTOCOL_STATES);

const count = (v: string | undefined): number => {
  const n = v === undefined || !/^\d{1,15}$/.test(v) ? 0 : Number(v);
  return Number.isSafeInteger(n) ? n : 0;
};

export function readRequest(a: ReadonlyMap<string, string>): ReadResult {
  const type = a.get('request');
  if (type === undefined) return { ok: false, problem: 'the request has no "request" attribute' };
  if (type !== 'smtpd_access_policy') return { ok: false, problem: `unsupported request type ${JSON.stringify(type.slice(0, 64))} (only smtpd_access_policy)` };
  const state = a.get('protocol_state');
  if (state === undefined || !STATES.has(state)) {
    return { ok: false, problem: state === undefined ? 'the request has no protocol_state' : `unknown protocol_state ${JSON.stringify(state.slice(0, 64))}` };
  }
  const clientAddress = a.get('client_address') ?? '';
  // Every check keys on the client; a request without a usable one cannot be judged.
  if (isIP(clientAddress) === 0) return { ok: false, problem: `client_address ${JSON.stringify(clientAddress.slice(0, 64))} is not an IP address` };
  const s = (name: string): string => a.get(name) ?? '';
  return {
    ok: true,
    request: {
      state: state as ProtocolState,
      protocolName: s('protocol_name'),
      clientAddress,
      clientPort: count(a.get('client_port')),
      clientName: s('client_name'),
      reverseClientName: s('reverse_client_name'),
      heloName: s('helo_name'),
      sender: s('sender'),
      recipient: s('recipient'),
      recipientCount: count(a.get('recipient_count')),
      queueId: s('queue_id'),
      instance: s('instance'),
      saslMethod: s('sasl_method'),
      saslUsername: s('sasl_username'),
      saslSender: s('sasl_sender'),
      size: count(a.get('size')),
      encryptionProtocol: s('encryption_protocol'),
      encryptionCipher: s('encryption_cipher'),
      ccertSubject: s('ccert_subject'),
      etrnDomain: s('etrn_domain'),
      stress: s('stress') === 'yes',
      policyContext: s('policy_context'),
      serverAddress: s('server_address'),
      serverPort: count(a.get('server_port')),
    },
  };
}
