// The dashboard's browser script, served as /dashboard.js: it trades the token once for a session
// (an HttpOnly cookie and a request token kept only in this page's memory; the token itself is
// not kept), asks the API every 15 s, and draws the charts as SVG. Every value from the
// API is put in the page as text (textContent), never as markup: logins, addresses and HELO
// names are chosen by strangers. Written without template literals, as it lives in one.

export const DASHBOARD_JS = String.raw`'use strict';
(function () {
  var csrf = null;
  var renderHooks = [];
  var SVGNS = 'http://www.w3.org/2000/svg';
  var REFRESH_MS = 15000;
  var timer = null;

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) if (attrs[k] !== undefined && attrs[k] !== null) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function svg(tag, attrs, text) {
    var e = document.createElementNS(SVGNS, tag);
    if (attrs) for (var k in attrs) if (attrs[k] !== undefined && attrs[k] !== null) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function pad(n) { return (n < 10 ? '0' : '') + n; }
  function hhmm(ms) { var d = new Date(ms); return pad(d.getHours()) + ':' + pad(d.getMinutes()); }
  function stamp(ms) { var d = new Date(ms); return (d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' + hhmm(ms); }
  function age(seconds) {
    if (seconds < 90) return Math.round(seconds) + ' s';
    if (seconds < 5400) return Math.round(seconds / 60) + ' min';
    if (seconds < 172800) return (seconds / 3600).toFixed(1) + ' h';
    return (seconds / 86400).toFixed(1) + ' d';
  }

  // ---- token -------------------------------------------------------------------------------

  function takeTokenFromFragment() {
    var m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (!m) return null;
    // Out of the address bar and the history, so it is not shared with a copied link.
    history.replaceState(null, '', location.pathname + location.search);
    return decodeURIComponent(m[1]);
  }

  // The token goes to the server once, for a session; then only the cookie and the request token.
  function signIn(tok) {
    return fetch('/api/session', { method: 'POST', headers: { Authorization: 'Bearer ' + tok }, cache: 'no-store', credentials: 'same-origin' })
      .then(function (r) {
        if (r.status === 401) { csrf = null; showLogin('The token was refused.'); return false; }
        if (!r.ok) throw new Error('HTTP ' + r.status);
        return r.json().then(function (b) { csrf = b.csrf; return true; });
      });
  }

  // After a reload: the session the cookie names, if it is still open.
  function resume() {
    return fetch('/api/session', { cache: 'no-store', credentials: 'same-origin' })
      .then(function (r) { return r.ok ? r.json().then(function (b) { csrf = b.csrf; return true; }) : false; });
  }

  function showLogin(message) {
    if (timer) { clearTimeout(timer); timer = null; }
    $('main').hidden = true;
    $('logout').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = message || '';
    $('status').textContent = '';
  }

  function Unauthorized() {}

  function api(path, method) {
    var m = method || 'GET';
    var headers = m === 'GET' ? {} : { 'X-Mailward-CSRF': csrf || '' };
    return fetch(path, { method: m, headers: headers, cache: 'no-store', credentials: 'same-origin' })
      .then(function (r) {
        if (r.status === 401) throw new Unauthorized();
        if (!r.ok) return r.json().then(function (b) { throw new Error(b && b.error ? b.error : ('HTTP ' + r.status)); }, function () { throw new Error('HTTP ' + r.status); });
        return r.json();
      });
  }

  // ---- charts ------------------------------------------------------------------------------

  var LINES = [
    { key: 'accepted', label: 'accepted' },
    { key: 'relayed', label: 'relayed (to other domains)' },
    { key: 'delivered', label: 'delivered' },
    { key: 'bounced', label: 'bounced' }
  ];

  function rejectReasons(hours) {
    var totals = {};
    hours.forEach(function (h) { for (var k in h.rejectedBy) totals[k] = (totals[k] || 0) + h.rejectedBy[k]; });
    var keys = Object.keys(totals).sort(function (a, b) { return totals[b] - totals[a] || (a < b ? -1 : 1); });
    // Four reasons by name, the rest together, so the colours stay readable.
    if (keys.length > 5) return { named: keys.slice(0, 4), other: true, totals: totals };
    return { named: keys, other: false, totals: totals };
  }

  function drawChart(container, id, hours, labelEvery, labelOf) {
    clear(container);
    var W = 960, H = 240, L = 44, R = 10, T = 10, B = 26;
    var n = hours.length;
    var reasons = rejectReasons(hours);
    var max = 1;
    hours.forEach(function (h) {
      LINES.forEach(function (s) { max = Math.max(max, h[s.key]); });
      max = Math.max(max, h.rejected);
    });
    var step = (W - L - R) / n;
    var x = function (i) { return L + step * i + step / 2; };
    var y = function (v) { return T + (H - T - B) * (1 - v / max); };
    var root = svg('svg', { id: id, viewBox: '0 0 ' + W + ' ' + H, width: '100%', role: 'img', 'aria-label': 'messages per hour' });
    [0, 0.5, 1].forEach(function (f) {
      var v = Math.round(max * f);
      root.appendChild(svg('line', { class: 'axis', x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      root.appendChild(svg('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, v));
    });
    hours.forEach(function (h, i) {
      if (i % labelEvery === 0) root.appendChild(svg('text', { x: x(i), y: H - 8, 'text-anchor': 'middle' }, labelOf(h.hour)));
    });
    // Rejections: stacked bars, one colour per check.
    var bars = svg('g', { class: 'rejected', 'data-series': 'rejected', 'data-values': hours.map(function (h) { return h.rejected; }).join(',') });
    hours.forEach(function (h, i) {
      var base = 0;
      var parts = reasons.named.map(function (k, j) { return { k: k, v: h.rejectedBy[k] || 0, cls: 'rej' + j }; });
      if (reasons.other) {
        var rest = h.rejected - parts.reduce(function (a, p) { return a + p.v; }, 0);
        parts.push({ k: 'other', v: rest, cls: 'rej4' });
      }
      parts.forEach(function (p) {
        if (p.v <= 0) return;
        var r = svg('rect', { class: 'bar ' + p.cls, 'data-reason': p.k, x: x(i) - step * 0.35, width: step * 0.7, y: y(base + p.v), height: y(base) - y(base + p.v) });
        r.appendChild(svg('title', null, labelOf(h.hour) + ': ' + p.v + ' rejected by ' + p.k));
        bars.appendChild(r);
        base += p.v;
      });
    });
    root.appendChild(bars);
    LINES.forEach(function (s) {
      var values = hours.map(function (h) { return h[s.key]; });
      var d = values.map(function (v, i) { return (i === 0 ? 'M' : 'L') + x(i).toFixed(1) + ' ' + y(v).toFixed(1); }).join(' ');
      var p = svg('path', { class: 'line ' + s.key, 'data-series': s.key, 'data-values': values.join(','), d: d });
      p.appendChild(svg('title', null, s.label + ': ' + values.reduce(function (a, b) { return a + b; }, 0) + ' in this period'));
      root.appendChild(p);
    });
    container.appendChild(root);
    var legend = el('div', { class: 'legend' });
    LINES.forEach(function (s) {
      var item = el('span');
      item.appendChild(el('span', { class: 'swatch ' + s.key }));
      item.appendChild(document.createTextNode(s.label));
      legend.appendChild(item);
    });
    reasons.named.forEach(function (k, j) {
      var item = el('span', { 'data-reason': k });
      item.appendChild(el('span', { class: 'swatch rej' + j }));
      item.appendChild(document.createTextNode('rejected: ' + k + ' (' + reasons.totals[k] + ')'));
      legend.appendChild(item);
    });
    if (reasons.other) {
      var o = el('span');
      o.appendChild(el('span', { class: 'swatch rej4' }));
      o.appendChild(document.createTextNode('rejected: other checks'));
      legend.appendChild(o);
    }
    container.appendChild(legend);
  }

  function sparkline(values) {
    var W = 110, H = 24;
    var max = Math.max.apply(null, values.concat([1]));
    var d = values.map(function (v, i) { return (i === 0 ? 'M' : 'L') + (values.length > 1 ? (i * (W - 2) / (values.length - 1) + 1) : 1).toFixed(1) + ' ' + (H - 2 - (H - 4) * v / max).toFixed(1); }).join(' ');
    var s = svg('svg', { class: 'sparkline', viewBox: '0 0 ' + W + ' ' + H, width: W, height: H });
    var p = svg('path', { class: 'spark', d: d, 'data-values': values.join(',') });
    p.appendChild(svg('title', null, 'relayed per hour, last 24 h'));
    s.appendChild(p);
    return s;
  }

  // A source sending most of the relayed mail, and a fair amount of it: the incident's shape.
  function dominant(t) { return t.relayedShare >= 0.5 && t.relayed >= 10; }

  function drawTop(container, list) {
    clear(container);
    if (list.length === 0) { container.appendChild(el('p', { class: 'empty' }, 'no mail in the last 24 hours')); return; }
    var max = Math.max.apply(null, list.map(function (t) { return Math.max(t.messages, t.relayed); }).concat([1]));
    list.forEach(function (t) {
      var row = el('div', { class: 'top-row' + (dominant(t) ? ' dominant' : ''), 'data-key': t.key, 'data-relayed': t.relayed, 'data-messages': t.messages });
      row.appendChild(el('span', { class: 'key', title: t.key }, t.key));
      var W = 300, H = 18;
      var bar = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, width: '100%', height: H });
      bar.appendChild(svg('rect', { class: 'bar-messages', x: 0, y: 2, height: H - 4, width: (W * t.messages / max).toFixed(1) }));
      var r = svg('rect', { class: 'bar-relayed', x: 0, y: 5, height: H - 10, width: (W * t.relayed / max).toFixed(1) });
      r.appendChild(svg('title', null, t.relayed + ' relayed of ' + t.messages + ' accepted; ' + t.rejected + ' rejected'));
      bar.appendChild(r);
      row.appendChild(bar);
      row.appendChild(el('span', { class: 'count' }, t.relayed + ' relayed of ' + t.messages));
      row.appendChild(sparkline(t.relayedPerHour));
      row.appendChild(el('span', { class: 'share' }, Math.round(t.relayedShare * 100) + '%'));
      container.appendChild(row);
    });
  }

  // ---- figures and tables ------------------------------------------------------------------

  function card(id, label, value, warn) {
    var c = el('div', { class: 'card' + (warn ? ' warn' : ''), id: 'card-' + id });
    c.appendChild(el('div', { class: 'label' }, label));
    c.appendChild(el('div', { class: 'value' }, value));
    return c;
  }

  function drawCards(s) {
    var cards = $('cards');
    clear(cards);
    var q = s.queue;
    cards.appendChild(card('queue', 'queued messages', q ? q.depth : 'n/a', false));
    cards.appendChild(card('held', 'on hold', q ? q.held : 'n/a', q && q.held > 0));
    // While the server's start-up scan runs, how far it is (meanwhile the figures above are read from disk; then from the catalog).
    var c = s.catalog;
    if (c && c.state !== 'loaded') cards.appendChild(card('catalog', 'queue catalog ' + c.state, c.scanned + ' scanned, ' + Math.round(c.fraction * 100) + '%', true));
    cards.appendChild(card('oldest', 'oldest message', q && q.oldestAgeSeconds !== null ? age(q.oldestAgeSeconds) : 'none', q && q.oldestAgeSeconds > 86400));
    // The queue-growth alarm's last sample: growth an hour over its window ("measuring" until one is sampled).
    var g = s.queueGrowth;
    if (g) cards.appendChild(card('growth', 'queue growth', typeof g.growthPerHour === 'number' ? (g.growthPerHour > 0 ? '+' : '') + Math.round(g.growthPerHour).toLocaleString('en-US') + '/h' : 'measuring', !!g.alarm));
    var t = s.last24h;
    cards.appendChild(card('accepted', 'accepted, 24 h', t.accepted, false));
    cards.appendChild(card('relayed', 'relayed, 24 h', t.relayed, false));
    cards.appendChild(card('rejected', 'rejected, 24 h', t.rejected, false));
    cards.appendChild(card('delivered', 'delivered, 24 h', t.delivered, false));
    cards.appendChild(card('bounced', 'bounced, 24 h', t.bounced, t.bounced > 0));
  }

  function row(cells) {
    var tr = el('tr');
    cells.forEach(function (c) {
      if (c && c.nodeType) { var td = el('td'); td.appendChild(c); tr.appendChild(td); }
      else tr.appendChild(el('td', null, c === undefined || c === null ? '' : c));
    });
    return tr;
  }

  function fillTable(id, rows, emptyText, columns) {
    var body = $(id).tBodies[0];
    clear(body);
    if (rows.length === 0) {
      var tr = el('tr');
      tr.appendChild(el('td', { class: 'empty', colspan: columns }, emptyText));
      body.appendChild(tr);
      return;
    }
    rows.forEach(function (r) { body.appendChild(r); });
  }

  function list(v) { return Array.isArray(v) ? v.join(', ') : (v || ''); }

  function drawAlerts(s, top, breakers) {
    var box = $('alerts');
    clear(box);
    (s.tunnels || []).forEach(function (t) {
      box.appendChild(el('div', { class: 'alert tunnel', 'data-address': t.address },
        'Client ' + t.address + ' looks like a tunnel or proxy carrying many clients (' + t.heloNames + ' HELO names and ' + t.senderDomains +
        ' sender domains within the hour, since ' + stamp(t.since) + '): relay.trustedNetworks no longer applies to it. Send the real client address with PROXY protocol and remove it from relay.trustedNetworks.'));
    });
    (s.warnings || []).forEach(function (w) {
      box.appendChild(el('div', { class: 'alert config-warning', 'data-setting': w.setting }, 'Config ' + w.setting + ': ' + w.message + '. Fix: ' + w.fix));
    });
    var g = s.queueGrowth;
    if (g && g.alarm) box.appendChild(el('div', { class: 'alert queue-growth', 'data-kind': g.alarm.kind }, 'Queue growth alarm since ' + stamp(g.alarm.since) + ': ' + g.alarm.reason + '. Look at the queue by sender, login and domain (below, or mailward queue list --summary).'));
    (breakers.breakers || []).forEach(function (b) {
      if (b.open) box.appendChild(el('div', { class: 'alert breaker', 'data-name': b.name }, 'Breaker ' + b.name + ' is open' + (b.reason ? ': ' + b.reason : '') + '. Outbound mail from it is held.'));
    });
    top.logins.concat(top.clients).forEach(function (t) {
      if (dominant(t)) box.appendChild(el('div', { class: 'alert dominant', 'data-key': t.key }, t.key + ' sent ' + Math.round(t.relayedShare * 100) + '% of the relayed mail in the last 24 hours (' + t.relayed + ' messages).'));
    });
  }

  function drawBreakers(b) {
    var rows = (b.breakers || []).map(function (x) {
      var tr = row([x.name, x.open ? 'open' : 'closed', x.since ? stamp(x.since) : '', x.reason || '']);
      tr.setAttribute('data-name', x.name);
      tr.children[1].className = x.open ? 'state-open' : 'state-closed';
      var td = el('td');
      if (x.open && b.available) {
        var btn = el('button', { type: 'button', class: 'release', 'data-name': x.name }, 'Release');
        btn.addEventListener('click', function () {
          btn.disabled = true;
          api('/api/breakers/' + encodeURIComponent(x.name) + '/release', 'POST').then(refresh, function (e) {
            btn.disabled = false;
            if (e instanceof Unauthorized) showLogin('The session ended; sign in again.');
            else $('status').textContent = 'release failed: ' + e.message;
          });
        });
        td.appendChild(btn);
      }
      tr.appendChild(td);
      return tr;
    });
    fillTable('breakers', rows, b.available ? 'no breakers' : 'the outbound guard is not connected', 5);
  }

  function drawRelayed(items) {
    fillTable('relayed', items.map(function (m) {
      var tr = row([stamp(m.at), m.queueId, m.from || '<>', list(m.to), m.relay, (m.client || '') + (m.proxy ? ' via ' + m.proxy : '')]);
      tr.setAttribute('data-queue-id', m.queueId);
      return tr;
    }), 'nothing relayed yet', 6);
  }

  function drawDecisions(items) {
    fillTable('decisions', items.map(function (d) {
      var tr = row([stamp(d.at), d.event, d.check || '', d.client || '', d.login || '', d.from || '', list(d.to || d.rcpt), d.reason || d.reply || d.relay || '']);
      tr.setAttribute('data-event', d.event);
      return tr;
    }), 'no decisions yet', 8);
  }

  function render(all) {
    var s = all[0], top = all[1], relayed = all[2], decisions = all[3], breakers = all[4];
    $('login').hidden = true;
    $('main').hidden = false;
    $('logout').hidden = false;
    drawAlerts(s, top, breakers);
    drawCards(s);
    drawChart($('chart-24h'), 'svg-24h', s.hours24, 3, hhmm);
    drawChart($('chart-7d'), 'svg-7d', s.hours168, 24, function (ms) { var d = new Date(ms); return (d.getMonth() + 1) + '-' + pad(d.getDate()); });
    drawTop($('top-logins'), top.logins);
    drawTop($('top-clients'), top.clients);
    drawBreakers(breakers);
    drawRelayed(relayed.relayed);
    drawDecisions(decisions.decisions);
    $('status').textContent = 'updated ' + hhmm(Date.now()) + ':' + pad(new Date().getSeconds());
    // The incident console (console.js) draws its parts from the same summary, then counts as drawn.
    return Promise.all(renderHooks.map(function (h) { return h(s); })).then(function () {
      document.body.setAttribute('data-renders', String(Number(document.body.getAttribute('data-renders') || '0') + 1));
    });
  }

  function refresh() {
    if (timer) { clearTimeout(timer); timer = null; }
    return Promise.all([api('/api/summary'), api('/api/top?hours=24&limit=10'), api('/api/relayed?limit=50'), api('/api/decisions?limit=50'), api('/api/breakers')])
      .then(render, function (e) {
        if (e instanceof Unauthorized) { csrf = null; showLogin('The session ended; sign in again.'); return; }
        $('status').textContent = 'cannot reach the server: ' + e.message;
      })
      .then(function () { if (csrf && $('login').hidden) timer = setTimeout(refresh, REFRESH_MS); });
  }

  function start(ok) { if (ok) refresh(); }
  function failed(e) { $('login-error').textContent = 'cannot reach the server: ' + e.message; }

  $('login').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var tok = $('token-input').value.trim();
    $('token-input').value = '';
    signIn(tok).then(start, failed);
  });
  $('logout').addEventListener('click', function () {
    fetch('/api/session', { method: 'DELETE', headers: { 'X-Mailward-CSRF': csrf || '' }, credentials: 'same-origin' }).then(function () { csrf = null; showLogin(''); }, function () { csrf = null; showLogin(''); });
  });

  // A link with #token=… opened on a page already showing: take it, and show with it.
  window.addEventListener('hashchange', function () {
    var tok = takeTokenFromFragment();
    if (tok) signIn(tok).then(start, failed);
  });

  // What the incident console (console.js) shares with this script.
  window.MailwardUi = {
    api: api, el: el, clear: clear, row: row, fillTable: fillTable, stamp: stamp, refresh: refresh,
    isUnauthorized: function (e) { return e instanceof Unauthorized; },
    onRender: function (h) { renderHooks.push(h); }
  };

  var fragment = takeTokenFromFragment();
  (fragment ? signIn(fragment) : resume().then(function (ok) { if (!ok) showLogin(''); return ok; })).then(start, failed);
})();
`;
