// What the importer never read: every main.cf parameter and -o override that took no part in the
// result, and every master.cf service it did not turn into something, listed with its line and
// one of three answers — harmless (Mailward needs nothing for it, and why), set by hand (Mailward
// has the setting; the importer does not write it), or unknown (check what it does). Run after
// everything else, so "read" is exact: PostfixSettings remembers each line a translation looked at.
import type { Param } from './main-cf.ts';
import { readMap } from './maps.ts';
import type { Service } from './master-cf.ts';
import type { Report } from './report.ts';
import type { PostfixSettings } from './settings.ts';

type Answer = { readonly kind: 'harmless'; readonly why: string } | { readonly kind: 'by-hand'; readonly setting: string; readonly fix: string } | { readonly kind: 'none'; readonly fix: string };

const ok = (why: string): Answer => ({ kind: 'harmless', why });
const hand = (setting: string, fix: string): Answer => ({ kind: 'by-hand', setting, fix });
const none = (fix: string): Answer => ({ kind: 'none', fix });

const PATHS = ok("a path of Postfix's own installation; Mailward keeps its files under dataDir");
const LOGGING = ok('logging of Postfix; Mailward logs one line per decision (log.level, log.format: postfix for the old layout)');
const TLS_INTERNAL = ok("Postfix's TLS internals (session cache, entropy, logging); Mailward uses Node's TLS with TLS 1.2 and later");
const CIPHERS = ok("Mailward takes Node's TLS defaults (TLS 1.2+, no export or NULL ciphers); nothing to set");
const SASL_OPTIONS = ok('Mailward offers AUTH PLAIN and LOGIN only over TLS (RFC 4954 §4: 538 otherwise) and never anonymous logins');
const REPLY_CODES = ok('Mailward answers with the standard codes (RFC 5321 §4.2.2, RFC 3463): 550 5.1.1 for unknown users, 554 5.7.1 for relay');
const POSTSCREEN = ok("postscreen's tests: the listener has greetingDelay (clients that talk first are dropped) and checks.dnsbl; the postscreen_dnsbl_sites item above says what to place");
const PROCESS = ok("Postfix's process and queue-manager tuning; Mailward is one process (workers: auto for more)");

/** Parameters by name. The reason is one line; "by hand" names the Mailward setting. */
const KNOWN: Readonly<Record<string, Answer>> = {
  // Installation, compatibility and local conventions.
  compatibility_level: ok('Postfix defaults are read for the version found (postconf -d); the importer evaluated the compatibility forms with it'),
  biff: ok('the local biff notification service; Mailward has no local(8) delivery agent'),
  append_dot_mydomain: ok('Mailward never rewrites addresses ("user@host" stays as the client wrote it; a domainless address is refused)'),
  append_at_myorigin: ok('Mailward refuses addresses without a domain instead of appending myorigin'),
  readme_directory: PATHS,
  html_directory: PATHS,
  manpage_directory: PATHS,
  sample_directory: PATHS,
  command_directory: PATHS,
  daemon_directory: PATHS,
  data_directory: PATHS,
  meta_directory: PATHS,
  shlib_directory: PATHS,
  sendmail_path: ok('programs hand mail to "mailward sendmail" (the sendmail section); point /usr/sbin/sendmail at it on cut-over'),
  newaliases_path: ok('aliases live in the user list (mailward alias add); there is no aliases database to rebuild'),
  mailq_path: ok('the queue is shown by mailward queue list'),
  mail_owner: ok('the user Mailward runs as is its service user (user/group, or systemd User=)'),
  setgid_group: ok('no setgid postdrop: local programs use mailward sendmail'),
  mail_spool_directory: ok('mbox delivery is reported above (local delivery); Mailward delivers to Maildir or LMTP'),
  alias_database: ok('the file newaliases rebuilt; the importer read alias_maps itself'),
  inet_protocols: ok('each listener binds the address it is given; add a listener on [::] for IPv6'),
  mailbox_size_limit: ok('a limit on mbox files of local(8); Mailward writes Maildir (quotas are the IMAP server\'s)'),
  virtual_mailbox_limit: ok('a limit on mbox files of virtual(8); Mailward writes Maildir (quotas are the IMAP server\'s)'),
  virtual_minimum_uid: ok('Mailward writes Maildirs as one owner (delivery.local.maildir.owner), never as uid 0'),
  strict_rfc821_envelopes: ok('Mailward parses MAIL FROM and RCPT TO strictly (RFC 5321 §4.1.2) anyway'),
  disable_vrfy_command: ok('Mailward answers VRFY with 252 and never confirms an address (RFC 5321 §3.5.3)'),
  smtpd_helo_required: ok('Mailward refuses MAIL FROM before HELO/EHLO (503 5.5.1) anyway'),
  smtpd_tls_auth_only: ok('Mailward offers logins only over TLS anyway (RFC 4954 §4: 538 otherwise)'),
  smtpd_sasl_security_options: SASL_OPTIONS,
  smtpd_sasl_tls_security_options: SASL_OPTIONS,
  smtpd_sasl_local_domain: ok('Mailward logins are full addresses'),
  smtpd_sasl_authenticated_header: ok('Mailward never names the login in the Received header'),
  broken_sasl_auth_clients: ok('Mailward advertises AUTH once, as RFC 4954 says; no old Outlook form'),
  smtpd_tls_received_header: ok('the Received header records TLS as Mailward writes it'),
  smtpd_tls_ask_ccert: ok('client certificates never let anyone relay in Mailward'),
  smtpd_discard_ehlo_keywords: ok('Mailward advertises what it implements'),
  unknown_local_recipient_reject_code: REPLY_CODES,
  unknown_virtual_mailbox_reject_code: REPLY_CODES,
  unknown_virtual_alias_reject_code: REPLY_CODES,
  unknown_address_reject_code: REPLY_CODES,
  unknown_client_reject_code: REPLY_CODES,
  unknown_hostname_reject_code: REPLY_CODES,
  unverified_recipient_reject_code: REPLY_CODES,
  unverified_sender_reject_code: REPLY_CODES,
  relay_domains_reject_code: REPLY_CODES,
  access_map_reject_code: REPLY_CODES,
  maps_rbl_reject_code: REPLY_CODES,
  invalid_hostname_reject_code: REPLY_CODES,
  non_fqdn_reject_code: REPLY_CODES,
  reject_code: REPLY_CODES,
  defer_code: REPLY_CODES,
  show_user_unknown_table_name: ok('Mailward\'s replies never name its tables'),
  smtpd_error_sleep_time: ok('Mailward closes after limits.maxBadCommands errors; password guessing is slowed by auth.delay'),
  smtpd_soft_error_limit: ok('Mailward closes after limits.maxBadCommands errors'),
  smtpd_junk_command_limit: ok('Mailward counts commands per connection: limits.maxCommands'),
  syslog_name: LOGGING,
  syslog_facility: LOGGING,
  maillog_file: LOGGING,
  smtpd_tls_loglevel: LOGGING,
  smtp_tls_loglevel: LOGGING,
  debug_peer_level: LOGGING,
  debug_peer_list: LOGGING,
  debugger_command: LOGGING,
  smtpd_tls_session_cache_database: TLS_INTERNAL,
  smtp_tls_session_cache_database: TLS_INTERNAL,
  smtpd_tls_session_cache_timeout: TLS_INTERNAL,
  tls_random_source: TLS_INTERNAL,
  smtp_tls_note_starttls_offer: TLS_INTERNAL,
  smtpd_tls_protocols: CIPHERS,
  smtpd_tls_mandatory_protocols: CIPHERS,
  smtpd_tls_ciphers: CIPHERS,
  smtpd_tls_mandatory_ciphers: CIPHERS,
  smtpd_tls_exclude_ciphers: CIPHERS,
  smtpd_tls_mandatory_exclude_ciphers: CIPHERS,
  smtp_tls_protocols: CIPHERS,
  smtp_tls_mandatory_protocols: CIPHERS,
  smtp_tls_ciphers: CIPHERS,
  smtp_tls_mandatory_ciphers: CIPHERS,
  smtp_tls_exclude_ciphers: CIPHERS,
  smtpd_tls_dh1024_param_file: CIPHERS,
  smtpd_tls_eecdh_grade: CIPHERS,
  tls_preempt_cipherlist: CIPHERS,
  tls_high_cipherlist: CIPHERS,
  tls_medium_cipherlist: CIPHERS,
  tls_ssl_options: CIPHERS,
  smtp_tls_CApath: ok("Mailward checks certificates against the system's CA store (delivery.smarthosts.<name>.ca for a private CA)"),
  smtp_tls_CAfile: ok("Mailward checks certificates against the system's CA store (delivery.smarthosts.<name>.ca for a private CA)"),
  smtpd_tls_CApath: ok('client certificates are not asked for'),
  smtpd_tls_CAfile: ok('client certificates are not asked for'),
  smtp_sasl_security_options: ok('Mailward logs in to a smarthost only over TLS (tls: starttls or implicit), never anonymously'),
  smtp_sasl_tls_security_options: ok('Mailward logs in to a smarthost only over TLS, never anonymously'),
  smtp_sasl_mechanism_filter: ok('Mailward logs in to a smarthost with PLAIN or LOGIN'),
  smtp_use_tls: ok('Mailward tries STARTTLS on every outbound connection (opportunistic, as smtp_tls_security_level = may)'),
  smtpd_use_tls: ok('Mailward offers STARTTLS on every listener (tls.cert/key, or a self-signed pair in dataDir/tls)'),
  smtpd_enforce_tls: ok('see smtpd_tls_security_level: per listener requireTls'),
  milter_default_action: ok('milters are reported above (smtpd_milters); Mailward has no milter client'),
  milter_protocol: ok('milters are reported above (smtpd_milters); Mailward has no milter client'),
  milter_mail_macros: ok('milters are reported above (smtpd_milters); Mailward has no milter client'),
  milter_macro_daemon_name: ok('milters are reported above (smtpd_milters); Mailward has no milter client'),
  receive_override_options: ok('the content filter is reported above; Mailward rewrites nothing and checks mail once'),
  smtp_send_xforward_command: ok("a content filter's transport setting; the filter is reported above"),
  smtp_data_done_timeout: ok('Mailward waits up to delivery.timeouts.idle for each reply'),
  smtpd_authorized_xforward_hosts: ok('Mailward believes no XFORWARD; only listeners.<name>.proxy.trusted can name another client address'),
  smtpd_client_port_logging: LOGGING,
  smtpd_peername_lookup: ok('Mailward never looks up the client name to decide anything'),
  notify_classes: ok('Mailward reports problems to the operator through its log, doctor and the dashboard'),
  bounce_notice_recipient: ok('Mailward reports problems to the operator through its log, doctor and the dashboard'),
  '2bounce_notice_recipient': ok('Mailward reports problems to the operator through its log, doctor and the dashboard'),
  delay_notice_recipient: ok('Mailward reports problems to the operator through its log, doctor and the dashboard'),
  error_notice_recipient: ok('Mailward reports problems to the operator through its log, doctor and the dashboard'),
  smtputf8_enable: ok('Mailward takes UTF-8 addresses where the next hop does'),
  allow_percent_hack: ok('Mailward never routes user%host@ourdomain (refused as a foreign route)'),
  swap_bangpath: ok('Mailward never routes bang paths (refused)'),
  resolve_dequoted_address: ok('Mailward compares addresses as RFC 5321 parses them; "a@b"@ours is never relayed'),
  in_flow_delay: PROCESS,
  default_process_limit: hand('limits.maxConnections', 'set limits.maxConnections to the number of clients served at once (Mailward default 1000)'),
  qmgr_message_active_limit: PROCESS,
  qmgr_message_recipient_limit: PROCESS,
  initial_destination_concurrency: PROCESS,
  default_destination_rate_delay: PROCESS,
  postscreen_access_list: POSTSCREEN,
  postscreen_blacklist_action: POSTSCREEN,
  postscreen_denylist_action: POSTSCREEN,
  postscreen_dnsbl_threshold: POSTSCREEN,
  postscreen_dnsbl_action: POSTSCREEN,
  postscreen_dnsbl_allowlist_threshold: POSTSCREEN,
  postscreen_dnsbl_whitelist_threshold: POSTSCREEN,
  postscreen_upstream_proxy_timeout: ok('the PROXY header is reported above (listeners.<name>.proxy.trusted); Mailward waits the command timeout for it'),
  smtpd_upstream_proxy_timeout: ok('the PROXY header is reported above (listeners.<name>.proxy.trusted); Mailward waits the command timeout for it'),
  postscreen_greet_action: hand('listeners.<name>.greetingDelay', 'set greetingDelay (e.g. 6s, postscreen_greet_wait) on the mx listener: clients that talk before the greeting are dropped'),
  postscreen_greet_wait: hand('listeners.<name>.greetingDelay', 'set greetingDelay on the mx listener to this pause'),
  smtp_helo_name: hand('delivery.heloName', 'set delivery.heloName to the name given to other servers'),
  smtpd_client_connection_count_limit: hand('limits.maxConnectionsPerClient', 'set limits.maxConnectionsPerClient (Mailward default 20)'),
  smtpd_client_connection_rate_limit: hand('checks.rate-limit.rules', 'add a connections rule to checks.rate-limit.rules (per client, in a window)'),
  smtpd_client_message_rate_limit: hand('checks.rate-limit.rules', 'add a messages rule to checks.rate-limit.rules (per client, in a window)'),
  smtpd_client_recipient_rate_limit: hand('checks.rate-limit.rules', 'add a recipients rule to checks.rate-limit.rules (per client, in a window)'),
  anvil_rate_time_unit: hand('checks.rate-limit.rules', 'the window of the rate limits: window of each checks.rate-limit rule'),
  smtpd_timeout: hand('limits.commandTimeout', 'set limits.commandTimeout (Mailward default 5m, RFC 5321 §4.5.3.2.7)'),
  smtpd_hard_error_limit: hand('limits.maxBadCommands', 'set limits.maxBadCommands (Mailward default 10)'),
  line_length_limit: hand('limits.maxLineLength', 'set limits.maxLineLength (Mailward default 4096)'),
  maximal_queue_lifetime: hand('queue.maxAge', 'set queue.maxAge (Mailward default 5d, as Postfix)'),
  bounce_queue_lifetime: hand('queue.maxAge', 'queue.maxAge covers bounces too'),
  minimal_backoff_time: hand('queue.minBackoff', 'set queue.minBackoff (Mailward default 5m)'),
  maximal_backoff_time: hand('queue.maxBackoff', 'set queue.maxBackoff (Mailward default 1h)'),
  queue_run_delay: hand('queue.minBackoff', 'Mailward schedules each message by its own backoff: queue.minBackoff/maxBackoff'),
  default_destination_concurrency_limit: hand('delivery.mx.concurrencyPerDomain', 'set delivery.mx.concurrencyPerDomain (Mailward default 10)'),
  smtp_destination_concurrency_limit: hand('delivery.mx.concurrencyPerDomain', 'set delivery.mx.concurrencyPerDomain (Mailward default 10)'),
  delay_warning_time: hand('delivery.bounces.delayWarnings', 'set delivery.bounces.delayWarnings: true and delayWarningAfter to this time'),
  smtpd_tls_chain_files: hand('tls.cert, tls.key', 'set tls.cert and tls.key to the certificate chain and key files'),
  smtpd_tls_eccert_file: hand('tls.cert, tls.key', 'Mailward takes one certificate: set tls.cert/tls.key to the one clients should see'),
  smtpd_tls_eckey_file: hand('tls.cert, tls.key', 'Mailward takes one certificate: set tls.cert/tls.key to the one clients should see'),
  smtp_dns_support_level: hand('delivery.dane', 'DNSSEC for DANE comes from a validating resolver: see delivery.dane'),
  smtp_tls_policy_maps: hand('delivery.smarthosts / delivery.mtaSts / delivery.dane', 'per-destination TLS: a smarthost always needs TLS; other domains get MTA-STS and DANE where published. Route a domain that must have TLS through a smarthost'),
  soft_bounce: none('Mailward has no soft-bounce mode: a 5xx from the next hop bounces. Start the new server on a test domain first instead'),
  smtpd_proxy_filter: none('a before-queue content filter is not available; place "spam" and "virus" in pipeline.data'),
  header_checks: none('no header rewriting or header_checks: place "spam" (rules) in pipeline.data, or keep refusing by sender/client with the access checks'),
  body_checks: none('no body_checks: place "spam" (rules) and "virus" in pipeline.data'),
  mime_header_checks: none('no header_checks: place "spam" and "virus" in pipeline.data'),
  nested_header_checks: none('no header_checks: place "spam" and "virus" in pipeline.data'),
  smtp_header_checks: none('no outbound header rewriting'),
  sender_canonical_maps: none('no address rewriting: Mailward delivers the address as sent; make aliases (mailward alias add) for incoming mail to old addresses'),
  recipient_canonical_maps: none('no address rewriting: make aliases (mailward alias add) for the old recipient addresses'),
  canonical_maps: none('no address rewriting: make aliases (mailward alias add) for the old addresses'),
  smtp_generic_maps: none('no outbound address rewriting'),
  masquerade_domains: none('no address masquerading: senders give the address they want (and may use it: checks.sender-login)'),
  sender_dependent_relayhost_maps: none('routes are keyed by recipient domain (delivery.routes); route those senders through the smarthost for everyone or keep a second server'),
  sender_dependent_default_transport_maps: none('routes are keyed by recipient domain (delivery.routes)'),
  sender_bcc_maps: none('no copy-to (bcc) maps'),
  recipient_bcc_maps: none('no copy-to (bcc) maps'),
  always_bcc: none('no copy-to (bcc) maps'),
  luser_relay: none('make a catch-all alias instead: mailward alias add @<domain> <mailbox>'),
  fallback_transport: none('Mailward delivers only to its own mailboxes: unknown local users are refused'),
  default_transport: none('delivery.routes "*" (smarthost:<name> or mx) is the default route; set it by hand when it is not mx'),
  relay_transport: none('delivery.routes decide how mail for other domains leaves'),
  smtpd_end_of_data_restrictions: none('place the checks in pipeline.data by hand'),
  smtpd_etrn_restrictions: none('Mailward has no ETRN (it answers 502)'),
  smtpd_null_access_lookup_key: none('the null sender is "<>" in the access checks'),
};

/** By name pattern, for families of parameters. */
const FAMILIES: ReadonlyArray<readonly [RegExp, Answer]> = [
  [/_directory$/, PATHS],
  [/^tls_/, TLS_INTERNAL],
  [/^(qmgr|lmtp|local|virtual|pipe|error|retry|discard)_/, ok("a setting of a Postfix delivery agent Mailward does not have (local delivery is Maildir or LMTP, set in delivery.local)")],
  [/_destination_(concurrency|recipient)_limit$|_destination_rate_delay$|_process_limit$/, PROCESS],
  [/_time_limit$/, ok("a spawn(8) service's time limit (e.g. policyd-spf_time_limit); the service itself is reported above")],
  [/_timeout$/, ok('Mailward has its own timeouts (limits.commandTimeout, limits.dataTimeout, delivery.timeouts); set them by hand if the old ones were changed on purpose')],
  [/^postscreen_/, POSTSCREEN],
  [/_reject_code$/, REPLY_CODES],
];

/** Answers that depend on the value. */
const BY_VALUE: Readonly<Record<string, (value: string) => Answer>> = {
  smtpd_data_restrictions: (v) =>
    v.split(/[\s,]+/).every((e) => /^(|permit|reject_unauth_pipelining)$/.test(e))
      ? ok("reject_unauth_pipelining is Mailward's SMTP layer: a client that sends before the reply it must wait for is refused")
      : none('place the checks for DATA in pipeline.data by hand (spam, virus); reject_unauth_pipelining needs nothing'),
  smtpd_banner: (v) =>
    /^\$\{?myhostname\}? ESMTP\b/.test(v)
      ? ok('Mailward greets with "220 <hostname> ESMTP" (RFC 5321 §4.2), the same start; it never names the software')
      : hand('hostname', 'Mailward greets with "220 <hostname> ESMTP" (RFC 5321 §4.2); set hostname for the name, the rest of the text is fixed'),
  smtp_tls_security_level: (v) =>
    /^(|none|may)$/.test(v)
      ? ok('direct MX delivery uses STARTTLS when offered, as "may"; DANE and MTA-STS where published (delivery.dane, delivery.mtaSts)')
      : /^dane/.test(v)
        ? hand('delivery.dane', 'DANE needs a validating resolver: set delivery.dane (see mailward config show)')
        : none(`Mailward has no "TLS or nothing" for direct MX delivery: it is opportunistic, and mandatory where MTA-STS or DANE say so. Route mail that must be encrypted through a smarthost (always TLS)`),
};

function answerFor(name: string, value = ''): Answer | undefined {
  return BY_VALUE[name]?.(value) ?? KNOWN[name] ?? FAMILIES.find(([re]) => re.test(name))?.[1];
}

/** Lists one unread parameter (a main.cf line or an -o) under its answer. */
function listParam(report: Report, p: Param, service: string | undefined): void {
  const what = `${service ? `-o ${p.name}=${p.value} (service ${service})` : `${p.name} = ${p.value}`}`;
  const a = answerFor(p.name, p.value);
  if (!a) {
    report.untranslated('unread-unknown', p.source, what, 'not translated: the importer does not know this parameter', `check what ${p.name} does (man 5 postconf) and set the closest Mailward setting by hand (mailward config show lists them), or leave it out`);
  } else if (a.kind === 'harmless') report.info('unread-harmless', p.source, what, `nothing needed: ${a.why}`);
  else if (a.kind === 'by-hand') report.untranslated('unread-by-hand', p.source, what, `not translated: Mailward has ${a.setting}`, a.fix);
  else report.untranslated('unread-no-equivalent', p.source, what, 'not translated: no equivalent in Mailward', a.fix);
}

/** Postfix's own daemons (master.cf "command" field): Mailward does their work itself. */
const DAEMONS = new Set(['pickup', 'cleanup', 'qmgr', 'oqmgr', 'tlsmgr', 'trivial-rewrite', 'bounce', 'flush', 'proxymap', 'showq', 'error', 'discard', 'local', 'virtual', 'anvil', 'scache', 'postlogd', 'dnsblog', 'tlsproxy', 'verify']);
/** Debian's stock master.cf examples (pipe services for other MTAs), unused unless named. */
const DEBIAN_PIPES = new Set(['maildrop', 'uucp', 'ifmail', 'bsmtp', 'scalemail-backend', 'mailman']);

/** Transport names the config sends mail through (content_filter, transports, transport_maps values). */
function transportNames(s: PostfixSettings): Set<string> {
  const names = new Set<string>();
  const add = (v: string): void => {
    const t = v.split(':')[0]!.trim();
    if (t) names.add(t);
  };
  for (const p of ['content_filter', 'virtual_transport', 'mailbox_transport', 'local_transport', 'default_transport', 'relay_transport', 'fallback_transport']) {
    for (const svc of [undefined, ...s.services]) if (s.isSet(p, svc)) add(s.get(p, svc));
  }
  for (const ref of s.list('transport_maps')) {
    const m = readMap(ref, s.root);
    if (m.kind === 'table') m.entries.forEach((e) => add(e.value));
  }
  return names;
}

function listService(report: Report, svc: Service, named: ReadonlySet<string>): void {
  const what = `service ${svc.name} ${svc.type} ... ${svc.command}${svc.args.length ? ` ${svc.args.join(' ')}` : ''}`;
  const argv = svc.args.join(' ');
  if (svc.type === 'inet' && (svc.command === 'smtpd' || svc.command === 'postscreen')) {
    return; // a listener that was not made (content filter return path, unreadable address): the listener import reported it
  } else if (svc.type === 'pass' && svc.command === 'smtpd') {
    report.info('service-postfix', svc.source, what, "nothing needed: postscreen's smtpd, the listener above");
  } else if (DAEMONS.has(svc.command) || (/^(smtp|relay)$/.test(svc.name) && svc.command === 'smtp' && svc.type === 'unix') || (svc.name === 'lmtp' && svc.command === 'lmtp') || (svc.name === 'retry' && svc.command === 'error')) {
    report.info('service-postfix', svc.source, what, "nothing needed: one of Postfix's own daemons; Mailward does that work in its own process");
  } else if (svc.command === 'pipe' && DEBIAN_PIPES.has(svc.name) && !named.has(svc.name)) {
    report.info('service-postfix', svc.source, what, "nothing needed: an example of Debian's stock master.cf that no transport names");
  } else if (svc.command === 'pipe') {
    const fix = /dovecot|deliver/.test(argv)
      ? "this hands mail to Dovecot's deliver: use LMTP instead, delivery.local.transport: lmtp with delivery.local.lmtp.address: unix:/run/dovecot/lmtp"
      : 'Mailward does not run programs for mail: run the program from a mailbox (a Sieve rule or a script reading the Maildir), or keep a small Postfix for it';
    report.untranslated('service-pipe', svc.source, what, `not translated: a pipe transport${named.has(svc.name) ? ' this config sends mail through' : ''}`, fix);
  } else if ((svc.command === 'smtp' || svc.command === 'lmtp') && named.has(svc.name)) {
    report.untranslated('service-filter', svc.source, what, 'not translated: the transport to a content filter (content_filter names it)', 'Mailward scans mail in its own pipeline: place "spam" (built in) and "virus" (clamd) in pipeline.data and drop the filter');
  } else if (svc.command === 'spawn') {
    report.untranslated('service-spawn', svc.source, what, 'not translated: a program Postfix starts per request (a policy service no restriction list uses)', 'if a restriction names it, see there; otherwise leave it out');
  } else if (svc.command === 'smtp' || svc.command === 'lmtp') {
    report.untranslated('service-transport', svc.source, what, `not translated: an extra ${svc.command} transport`, 'if transport_maps names it, see there; a relay with its own settings is a delivery.smarthosts entry');
  } else {
    report.untranslated('service-unknown', svc.source, what, 'not translated: the importer does not know this service', `check what ${svc.command} does (master(5)) and whether Mailward needs an equivalent; leave it out otherwise`);
  }
}

/** Lists every main.cf parameter, -o override and master.cf service the translation did not read or use. */
export function listUnread(s: PostfixSettings, report: Report): void {
  for (const u of s.unparsed) {
    report.untranslated('unread-line', u.source, u.text, 'not read: neither "name = value" (main.cf) nor a service of 8 fields (master.cf)', 'Postfix refuses to start with this line (postconf: fatal); correct or delete it, then import again');
  }
  const named = s.quietly(() => transportNames(s));
  const own = s.defaults.origin.startsWith('postconf');
  const classes = new Set(s.quietly(() => s.list('smtpd_restriction_classes')));
  for (const p of s.mainLines) {
    const last = s.main.get(p.name)!;
    if (last !== p) {
      report.info('unread-replaced', p.source, `${p.name} = ${p.value}`, `nothing: ${last.source} sets ${p.name} again, and the later line wins (postconf warns "overriding earlier entry")`);
      continue;
    }
    if (s.wasRead(p)) continue;
    if (classes.has(p.name)) {
      report.info('unread-class', p.source, `${p.name} = ${p.value}`, 'nothing: a restriction class (smtpd_restriction_classes) that no restriction list or access table names');
      continue;
    }
    // With postconf -d every Postfix parameter has a default: a name without one is the admin's own variable.
    if (own && !s.defaults.values.has(p.name) && answerFor(p.name) === undefined) report.info('unread-variable', p.source, `${p.name} = ${p.value}`, `nothing needed: a variable of this config that no setting the importer read refers to ($${p.name})`);
    else listParam(report, p, undefined);
  }
  for (const svc of s.services) {
    const used = s.wasUsed(svc);
    if (!used) listService(report, svc, named);
    for (const p of svc.overrides.values()) {
      if (s.wasRead(p)) continue;
      // An option of a service that is not translated goes with it; a listener's options are answered one by one.
      if (used) listParam(report, p, svc.name);
      else report.info('unread-service-option', p.source, `-o ${p.name}=${p.value} (service ${svc.name})`, `nothing on its own: an option of service ${svc.name} (${svc.source}), which is not translated (see there)`);
    }
  }
}
