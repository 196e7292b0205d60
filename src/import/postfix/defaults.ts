// Postfix's defaults for the parameters the importer reads. With postconf on the machine they come
// from `postconf -d` (the defaults of the Postfix version installed); without it, from the table
// below: Postfix 3.7's defaults (postconf -d of Debian 12), written as postconf prints them, so
// the compatibility_level forms are evaluated the same way either way. myhostname and mydomain
// are this machine's in postconf -d; the importer never copies addresses derived from them.
import { execFileSync } from 'node:child_process';

export const BUILT_IN_DEFAULTS: Readonly<Record<string, string>> = {
  compatibility_level: '0',
  myhostname: 'localhost.localdomain',
  mydomain: 'localdomain',
  myorigin: '$myhostname',
  mydestination: '$myhostname, localhost.$mydomain, localhost',
  mynetworks_style: '${{$compatibility_level} <level {2} ? {subnet} : {host}}',
  relay_domains: '${{$compatibility_level} <level {2} ? {$mydestination} : {}}',
  alias_maps: 'hash:/etc/aliases, nis:mail.aliases',
  alias_database: 'hash:/etc/aliases',
  local_recipient_maps: 'proxy:unix:passwd.byname $alias_maps',
  virtual_maps: '',
  virtual_alias_maps: '$virtual_maps',
  virtual_alias_domains: '$virtual_alias_maps',
  virtual_mailbox_domains: '$virtual_mailbox_maps',
  virtual_mailbox_maps: '',
  virtual_transport: 'virtual',
  local_transport: 'local:$myhostname',
  mailbox_transport: '',
  relayhost: '',
  transport_maps: '',
  smtpd_sasl_type: 'cyrus',
  smtpd_sasl_path: 'smtpd',
  smtpd_sasl_auth_enable: 'no',
  smtpd_client_restrictions: '',
  smtpd_helo_restrictions: '',
  smtpd_sender_restrictions: '',
  smtpd_recipient_restrictions: '',
  smtpd_relay_restrictions: '${{$compatibility_level} <level {1} ? {} : {permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination}}',
  smtpd_restriction_classes: '',
  smtpd_delay_reject: 'yes',
  smtpd_reject_unlisted_recipient: 'yes',
  smtpd_reject_unlisted_sender: 'no',
  smtpd_sender_login_maps: '',
  smtp_sasl_auth_enable: 'no',
  smtp_sasl_password_maps: '',
  smtp_tls_security_level: '',
  smtpd_upstream_proxy_protocol: '',
  postscreen_upstream_proxy_protocol: '',
  postscreen_dnsbl_sites: '',
  inet_interfaces: 'all',
  inet_protocols: 'all',
  message_size_limit: '10240000',
  recipient_delimiter: '',
  queue_directory: '/var/spool/postfix',
  home_mailbox: '',
  mailbox_command: '',
  smtpd_tls_cert_file: '',
  smtpd_tls_key_file: '$smtpd_tls_cert_file',
  smtpd_recipient_limit: '1000',
  content_filter: '',
  smtpd_milters: '',
  proxy_interfaces: '',
};

export interface Defaults {
  readonly values: ReadonlyMap<string, string>;
  /** "postconf -d (Postfix 3.7.11)" or "built-in table (Postfix 3.7)". */
  readonly origin: string;
}

/** `postconf -d` when it runs, else the built-in table; `postconf` names the program (tests). */
export function loadDefaults(postconf: string | false = 'postconf'): Defaults {
  if (postconf !== false) {
    try {
      const text = execFileSync(postconf, ['-d'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
      const values = new Map<string, string>();
      for (const line of text.split('\n')) {
        const m = /^([A-Za-z0-9_]+) = ?(.*)$/.exec(line);
        if (m) values.set(m[1]!, m[2]!);
      }
      if (values.size > 0) return { values, origin: `postconf -d (Postfix ${values.get('mail_version') ?? '?'})` };
    } catch {
      // not installed or not runnable: the table below
    }
  }
  return { values: new Map(Object.entries(BUILT_IN_DEFAULTS)), origin: 'built-in table (Postfix 3.7 defaults)' };
}
