// The incident console's browser script, served as /console.js after /dashboard.js (whose helpers
// it uses): the queue grouped by sender, login, recipient domain or state, a filter, bulk hold /
// release / delete of one group after a confirmation showing the server's count, one message's
// provenance, headers and recipients, and the "stop all outbound" switch. Text only, never markup.

export const CONSOLE_JS = String.raw`'use strict';
(function () {
  var ui = window.MailwardUi;
  if (!ui) return;
  var el = ui.el, clear = ui.clear;
  function $(id) { return document.getElementById(id); }
  var by = 'sender';
  var filter = {};
  var pending = null;

  function query(f) {
    var parts = [];
    for (var k in f) if (f[k] !== undefined) parts.push(encodeURIComponent(k) + '=' + encodeURIComponent(f[k]));
    return parts.join('&');
  }
  function describe(f) {
    var parts = [];
    for (var k in f) parts.push(k + ' = ' + (f[k] === '' ? '(none)' : f[k]));
    return parts.join(', ');
  }
  function say(text) { $('console-status').textContent = text; }
  function failed(e) {
    if (ui.isUnauthorized(e)) { ui.refresh(); return; }
    say('failed: ' + e.message);
  }

  // One confirmation at a time: the question, then Yes runs it.
  function confirmThen(text, run) {
    pending = run;
    $('confirm-text').textContent = text;
    $('confirm').hidden = false;
  }
  $('confirm-yes').addEventListener('click', function () {
    var run = pending;
    pending = null;
    $('confirm').hidden = true;
    if (run) run();
  });
  $('confirm-no').addEventListener('click', function () { pending = null; $('confirm').hidden = true; say('cancelled'); });

  var VERB = { hold: 'Hold', release: 'Release', 'delete': 'Delete' };
  function bulk(op, f) {
    ui.api('/api/queue/count?op=' + op + '&' + query(f)).then(function (c) {
      if (c.matched === 0) { say('nothing to ' + op + ' where ' + describe(f)); return; }
      confirmThen(VERB[op] + ' ' + c.matched + ' message(s) where ' + describe(f) + '?', function () {
        ui.api('/api/queue/bulk/' + op + '?' + query(f) + '&confirmed=' + c.matched, 'POST').then(function (r) {
          say(op + ': ' + r.result.changed + ' of ' + r.result.matched + ' message(s) where ' + describe(f));
          $('console-status').setAttribute('data-done', op);
          return ui.refresh();
        }, failed);
      });
    }, failed);
  }

  function groupFilter(key) {
    var f = {};
    for (var k in filter) f[k] = filter[k];
    f[by] = key;
    return f;
  }

  function drawGroups(g) {
    var body = $('queue-groups').tBodies[0];
    clear(body);
    $('queue-total').textContent = g.messages + ' message(s): ' + g.held + ' held, ' + g.deferred + ' deferred, ' + g.pending + ' pending' + (g.groupsTotal > g.groups.length ? '; ' + g.groups.length + ' of ' + g.groupsTotal + ' groups shown' : '');
    if (g.groups.length === 0) {
      var tr0 = el('tr');
      tr0.appendChild(el('td', { class: 'empty', colspan: 3 }, 'nothing queued'));
      body.appendChild(tr0);
      return;
    }
    g.groups.forEach(function (e) {
      var key = e[0], n = e[1];
      var tr = el('tr', { 'data-key': key, 'data-count': n });
      tr.appendChild(el('td', { class: 'key' }, key === '' ? '(no login)' : key));
      tr.appendChild(el('td', null, n));
      var td = el('td');
      ['hold', 'release', 'delete'].forEach(function (op) {
        var b = el('button', { type: 'button', class: 'bulk ' + op, 'data-op': op }, VERB[op]);
        b.addEventListener('click', function () { bulk(op, groupFilter(key)); });
        td.appendChild(b);
      });
      tr.appendChild(td);
      body.appendChild(tr);
    });
  }

  function loadGroups() {
    var q = query(filter);
    return ui.api('/api/queue/groups?by=' + by + (q ? '&' + q : '')).then(drawGroups, failed);
  }

  Array.prototype.forEach.call(document.querySelectorAll('button.group-by'), function (b) {
    b.addEventListener('click', function () {
      by = b.getAttribute('data-by');
      Array.prototype.forEach.call(document.querySelectorAll('button.group-by'), function (x) { x.classList.toggle('active', x === b); });
      loadGroups();
    });
  });
  $('queue-filter').addEventListener('submit', function (ev) {
    ev.preventDefault();
    filter = {};
    var v = $('filter-value').value.trim();
    if (v !== '') filter[$('filter-field').value] = v;
    $('filter-shown').textContent = v === '' ? '' : 'filter: ' + describe(filter);
    loadGroups();
  });

  // ---- one message ----
  function pair(dl, k, v) {
    if (v === undefined || v === null || v === '') return;
    dl.appendChild(el('dt', null, k));
    dl.appendChild(el('dd', { 'data-field': k }, v));
  }
  function drawMessage(m) {
    var box = $('message-detail');
    clear(box);
    box.hidden = false;
    var env = m.envelope, c = env.client;
    box.appendChild(el('h3', null, 'Message ' + env.id + ' (' + m.state + ')'));
    var dl = el('dl', { id: 'provenance' });
    pair(dl, 'from', env.mailFrom || '<>');
    pair(dl, 'received', ui.stamp(env.receivedAt));
    pair(dl, 'client', c.address);
    pair(dl, 'proxy', c.proxyPeer ? 'PROXY header from ' + c.proxyPeer + ' reported ' + c.address : '');
    pair(dl, 'login', c.login || '(none)');
    pair(dl, 'helo', c.helo);
    pair(dl, 'listener', c.listener);
    pair(dl, 'relay', env.relayReason || '(not relayed)');
    pair(dl, 'size', env.size + ' bytes');
    box.appendChild(dl);
    var t = el('table', { id: 'message-recipients' });
    var head = el('tr');
    ['Recipient', 'Transport', 'State', 'Attempts', 'Last reply', 'Next try'].forEach(function (h) { head.appendChild(el('th', null, h)); });
    t.appendChild(el('thead')).appendChild(head);
    var tb = el('tbody');
    m.recipients.forEach(function (r) {
      var tr = ui.row([r.address + (r.mailbox && r.mailbox !== r.address ? ' → ' + r.mailbox : ''), r.transport, r.status, r.attempts, r.lastReply || '', r.nextAttemptAt ? ui.stamp(r.nextAttemptAt) : '']);
      tr.setAttribute('data-rcpt', r.address);
      tb.appendChild(tr);
    });
    t.appendChild(tb);
    box.appendChild(t);
    box.appendChild(el('pre', { id: 'message-headers' }, m.headers + (m.headersTruncated ? '\n[… cut at 64 KiB]' : '')));
  }
  $('message-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    ui.api('/api/queue/message/' + encodeURIComponent($('message-id').value.trim())).then(function (r) { drawMessage(r.message); }, function (e) {
      $('message-detail').hidden = false;
      clear($('message-detail'));
      $('message-detail').appendChild(el('p', { class: 'empty' }, e.message));
    });
  });

  // ---- stop all outbound ----
  function drawOutbound(o) {
    $('outbound').hidden = !o;
    if (!o) return;
    $('outbound').setAttribute('data-stopped', String(o.stopped));
    $('outbound-stopped').hidden = !o.stopped;
    $('outbound-flowing').hidden = o.stopped;
    $('outbound-reason').textContent = o.stopped ? 'since ' + (o.since ? ui.stamp(o.since) : '?') + ' by ' + (o.by || '?') + (o.reason ? ': ' + o.reason : '') + '. Local delivery goes on.' : '';
  }
  function switchTo(action, question) {
    confirmThen(question, function () {
      ui.api('/api/outbound/' + action, 'POST').then(function (r) { drawOutbound(r.outbound); say('outbound ' + (r.outbound.stopped ? 'stopped' : 'started')); return ui.refresh(); }, failed);
    });
  }
  $('outbound-stop').addEventListener('click', function () { switchTo('stop', 'Stop ALL outbound mail? Mail to other servers stays queued until started again; local delivery goes on.'); });
  $('outbound-start').addEventListener('click', function () { switchTo('start', 'Start outbound mail again? Queued mail is tried at once.'); });

  ui.onRender(function (s) {
    drawOutbound(s.outbound);
    $('queue-console').hidden = !(s.actions && s.actions.console);
    return s.actions && s.actions.console ? loadGroups() : undefined;
  });
})();
`;
