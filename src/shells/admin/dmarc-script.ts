// The dashboard's DMARC panel, served as /dmarc.js after /dashboard.js (whose helpers it uses):
// what the aggregate reports received at our rua say for the last 7 days (GET /api/dmarc), per
// domain pass/fail and reporters, and the sources failing DMARC — the way an operator sees that
// someone sends as their domain. Hidden when the server does not read reports. Text only.

export const DMARC_JS = String.raw`'use strict';
(function () {
  var ui = window.MailwardUi;
  if (!ui) return;
  function $(id) { return document.getElementById(id); }
  function pct(n, of) { return of ? (100 * n / of).toFixed(1) + '%' : '-'; }

  function draw(d) {
    $('dmarc').hidden = !d.available;
    if (!d.available) return;
    $('dmarc-note').textContent = d.domains.length === 0 ? 'No reports yet: they arrive once a day from each large receiver at the rua of your _dmarc record.' : '';
    ui.fillTable('dmarc-domains', d.domains.map(function (x) {
      var tr = ui.row([x.domain, String(x.reports), String(x.messages), x.pass + ' (' + pct(x.pass, x.messages) + ')', x.fail + ' (' + pct(x.fail, x.messages) + ')',
        x.reporters.map(function (r) { return r.org + ' (' + r.messages + ')'; }).join(', ')]);
      tr.setAttribute('data-domain', x.domain);
      tr.setAttribute('data-fail', String(x.fail));
      return tr;
    }), 'no reports', 6);
    var failing = [];
    d.domains.forEach(function (x) {
      x.failingSources.forEach(function (f) {
        var tr = ui.row([f.ip, x.domain, String(f.messages), f.headerFrom.join(', '), f.reporters.join(', ')]);
        tr.setAttribute('data-ip', f.ip);
        tr.children[0].className = 'flag';
        failing.push(tr);
      });
    });
    ui.fillTable('dmarc-failing', failing, 'no source failed DMARC', 5);
  }

  ui.onRender(function () {
    return ui.api('/api/dmarc?days=7').then(draw, function (e) {
      if (!ui.isUnauthorized(e)) $('dmarc-note').textContent = 'cannot read the DMARC reports: ' + e.message;
    });
  });
})();
`;
