// The dashboard's TLS-RPT panel, served as /tlsrpt.js after /dashboard.js (whose helpers it uses):
// what the TLS-RPT reports received at our rua say for the last 7 days (GET /api/tlsrpt), per
// policy domain and type the sessions that succeeded and failed, and each failure flagged with
// its likely cause — peers that cannot validate our certificate, MTA-STS policy or TLSA. Hidden
// when the server does not read these reports. Text only.

export const TLSRPT_JS = String.raw`'use strict';
(function () {
  var ui = window.MailwardUi;
  if (!ui) return;
  function $(id) { return document.getElementById(id); }

  function draw(d) {
    $('tlsrpt').hidden = !d.available;
    if (!d.available) return;
    $('tlsrpt-note').textContent = d.policies.length === 0 ? 'No reports yet: senders that check TLS send one a day to the rua of your _smtp._tls record.' : '';
    ui.fillTable('tlsrpt-policies', d.policies.map(function (p) {
      var tr = ui.row([p.domain, p.type, String(p.reports), String(p.successful), String(p.failed),
        p.resultTypes.map(function (t) { return t.resultType + ' (' + t.sessions + ')'; }).join(', ') || '-',
        p.reporters.map(function (r) { return r.org; }).join(', ')]);
      tr.setAttribute('data-domain', p.domain);
      if (p.flagged) tr.children[4].className = 'flag';
      return tr;
    }), 'no reports', 7);
    var rows = [];
    d.policies.forEach(function (p) {
      p.failures.forEach(function (f) {
        var tr = ui.row([f.resultType, p.domain, f.sendingMtaIp || '-', f.receivingMx || f.receivingIp || '-', String(f.sessions), f.reporters.join(', '), f.hint]);
        tr.setAttribute('data-result', f.resultType);
        tr.children[0].className = 'flag';
        rows.push(tr);
      });
    });
    ui.fillTable('tlsrpt-failures', rows, 'no TLS failures reported', 7);
  }

  ui.onRender(function () {
    return ui.api('/api/tlsrpt?days=7').then(draw, function (e) {
      if (!ui.isUnauthorized(e)) $('tlsrpt-note').textContent = 'cannot read the TLS-RPT reports: ' + e.message;
    });
  });
})();
`;
