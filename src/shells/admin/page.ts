// The dashboard page and its style sheet, served as they are (no build step, nothing fetched
// from elsewhere). The page holds no data: its script asks the API with the token, which the
// operator types once or passes in the URL fragment (never sent to the server, so never logged).

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Mailward</title>
<link rel="stylesheet" href="/dashboard.css">
</head>
<body>
<header>
  <h1>Mailward</h1>
  <span id="status" aria-live="polite"></span>
  <button id="logout" type="button" hidden>Sign out</button>
</header>
<form id="login" hidden>
  <label for="token-input">Admin token (from admin.tokenFile)</label>
  <input id="token-input" type="password" autocomplete="current-password" required>
  <button type="submit">Open dashboard</button>
  <p id="login-error" role="alert"></p>
</form>
<main id="main" hidden>
  <section id="outbound" aria-label="Outbound mail" hidden>
    <div id="outbound-stopped" class="stopped" role="alert" hidden><strong>ALL OUTBOUND MAIL IS STOPPED</strong> <span id="outbound-reason"></span> <button id="outbound-start" type="button">Start outbound</button></div>
    <div id="outbound-flowing" hidden>Outbound mail flows. <button id="outbound-stop" type="button" class="danger">Stop all outbound</button></div>
  </section>
  <div id="confirm" class="confirm" role="alertdialog" aria-labelledby="confirm-text" hidden><span id="confirm-text"></span> <button id="confirm-yes" type="button" class="danger">Yes, do it</button> <button id="confirm-no" type="button">Cancel</button></div>
  <section id="alerts" aria-label="Warnings"></section>
  <section id="cards" class="cards" aria-label="Figures"></section>
  <section>
    <h2>Messages per hour, last 24 hours</h2>
    <div id="chart-24h" class="chart"></div>
  </section>
  <section>
    <h2>Messages per hour, last 7 days</h2>
    <div id="chart-7d" class="chart"></div>
  </section>
  <section class="two">
    <div>
      <h2>Top senders by login (24 h): relayed messages</h2>
      <div id="top-logins" class="top"></div>
    </div>
    <div>
      <h2>Top senders by client address (24 h): relayed messages</h2>
      <div id="top-clients" class="top"></div>
    </div>
  </section>
  <section id="queue-console" hidden>
    <h2>Queue by <span role="group" id="group-by"><button type="button" data-by="sender" class="group-by active">sender</button> <button type="button" data-by="login" class="group-by">login</button> <button type="button" data-by="domain" class="group-by">recipient domain</button> <button type="button" data-by="state" class="group-by">state</button></span></h2>
    <form id="queue-filter"><select id="filter-field" aria-label="Filter on"><option value="sender">sender</option><option value="login">login</option><option value="domain">recipient domain</option><option value="recipient">recipient</option><option value="state">state</option></select> <input id="filter-value" size="28" aria-label="Filter value" placeholder="address, @domain, login or state"> <button type="submit">Filter</button> <span id="filter-shown"></span></form>
    <p id="queue-total"></p>
    <p id="console-status" aria-live="polite"></p>
    <table id="queue-groups"><thead><tr><th>Group</th><th>Messages</th><th>On every message of the group (asks first)</th></tr></thead><tbody></tbody></table>
    <form id="message-form"><label for="message-id">Message (queue id)</label> <input id="message-id" size="20" required> <button id="message-show" type="submit">Show</button></form>
    <div id="message-detail" hidden></div>
  </section>
  <section id="dmarc" hidden>
    <h2>DMARC reports received at your rua, last 7 days</h2>
    <p id="dmarc-note" class="empty"></p>
    <table id="dmarc-domains"><thead><tr><th>Domain</th><th>Reports</th><th>Messages</th><th>DMARC pass</th><th>DMARC fail</th><th>Reporters</th></tr></thead><tbody></tbody></table>
    <h2>Sources failing DMARC: someone sending as your domain, or a service of yours not aligned yet</h2>
    <table id="dmarc-failing"><thead><tr><th>Source</th><th>Domain</th><th>Messages</th><th>Header From</th><th>Reported by</th></tr></thead><tbody></tbody></table>
  </section>
  <section id="tlsrpt" hidden>
    <h2>TLS-RPT reports received at your rua, last 7 days</h2>
    <p id="tlsrpt-note" class="empty"></p>
    <table id="tlsrpt-policies"><thead><tr><th>Domain</th><th>Policy</th><th>Reports</th><th>Sessions OK</th><th>Sessions failed</th><th>Failure types</th><th>Reporters</th></tr></thead><tbody></tbody></table>
    <h2>TLS failures reported: peers that could not set up the TLS your domain asks for</h2>
    <table id="tlsrpt-failures"><thead><tr><th>Result</th><th>Domain</th><th>Sending MTA</th><th>Receiving MX</th><th>Sessions</th><th>Reported by</th><th>Likely cause and fix</th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Outbound breakers</h2>
    <table id="breakers"><thead><tr><th>Breaker</th><th>State</th><th>Since</th><th>Why</th><th></th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Recently relayed, and why each was allowed to leave</h2>
    <table id="relayed"><thead><tr><th>Time</th><th>Queue id</th><th>From</th><th>To</th><th>Allowed by</th><th>Client</th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Recent decisions</h2>
    <table id="decisions"><thead><tr><th>Time</th><th>Decision</th><th>Check</th><th>Client</th><th>Login</th><th>From</th><th>To</th><th>Reason</th></tr></thead><tbody></tbody></table>
  </section>
</main>
<script src="/dashboard.js"></script>
<script src="/console.js"></script>
<script src="/dmarc.js"></script>
<script src="/tlsrpt.js"></script>
</body>
</html>
`;

export const DASHBOARD_CSS = `:root { color-scheme: light; --fg: #1d232a; --muted: #5c6773; --line: #d8dee4; --bg: #f6f8fa;
  --accepted: #2f6fdb; --relayed: #e8590c; --delivered: #2b8a3e; --bounced: #c92a2a;
  --rej0: #9c36b5; --rej1: #5f3dc4; --rej2: #1098ad; --rej3: #868e96; --rej4: #ced4da; }
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; font: 14px/1.4 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; align-items: center; gap: 16px; padding: 10px 20px; background: #1d232a; color: #fff; }
header h1 { font-size: 18px; margin: 0; }
#status { flex: 1; color: #c9d1d9; }
main, form { padding: 12px 20px 40px; max-width: 1280px; margin: 0 auto; }
form#login { display: flex; flex-direction: column; gap: 8px; max-width: 420px; margin-top: 60px; }
#login-error { color: var(--bounced); min-height: 1.4em; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; margin: 12px 0; }
section.two { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
#alerts:empty, #cards { background: none; border: none; padding: 0; }
#alerts:empty { margin: 0; }
.alert { padding: 8px 12px; border-radius: 4px; margin: 4px 0; background: #fff5f5; border: 1px solid #ffa8a8; color: #862e2e; font-weight: 600; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; }
.card .label { color: var(--muted); font-size: 12px; }
.card .value { font-size: 22px; font-weight: 600; }
.card.warn .value { color: var(--bounced); }
h2 { font-size: 15px; margin: 4px 0 8px; }
svg text { font-size: 11px; fill: var(--muted); }
svg .axis { stroke: var(--line); }
svg .line { fill: none; stroke-width: 2; }
svg .line.accepted { stroke: var(--accepted); }
svg .line.relayed { stroke: var(--relayed); stroke-width: 3; }
svg .line.delivered { stroke: var(--delivered); }
svg .line.bounced { stroke: var(--bounced); stroke-dasharray: 4 3; }
svg .rej0 { fill: var(--rej0); } svg .rej1 { fill: var(--rej1); } svg .rej2 { fill: var(--rej2); }
svg .rej3 { fill: var(--rej3); } svg .rej4 { fill: var(--rej4); }
svg .bar-relayed { fill: var(--relayed); }
svg .bar-messages { fill: #ffd8a8; }
svg .spark { fill: none; stroke: var(--relayed); stroke-width: 1.5; }
.legend { display: flex; flex-wrap: wrap; gap: 12px; font-size: 12px; color: var(--muted); margin-top: 4px; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; vertical-align: -2px; margin-right: 4px; }
.swatch.accepted { background: var(--accepted); } .swatch.relayed { background: var(--relayed); }
.swatch.delivered { background: var(--delivered); } .swatch.bounced { background: var(--bounced); }
.swatch.rej0 { background: var(--rej0); } .swatch.rej1 { background: var(--rej1); } .swatch.rej2 { background: var(--rej2); }
.swatch.rej3 { background: var(--rej3); } .swatch.rej4 { background: var(--rej4); }
.top-row { display: grid; grid-template-columns: minmax(120px, 1.2fr) 2fr 130px 110px 44px; gap: 8px; align-items: center; padding: 3px 0; border-bottom: 1px solid var(--bg); }
.top-row.dominant { background: #fff5f5; }
.top-row .key { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; font-family: ui-monospace, monospace; }
.top-row .share, .top-row .count { text-align: right; color: var(--muted); white-space: nowrap; }
table { width: 100%; border-collapse: collapse; font-size: 13px; }
th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid var(--line); vertical-align: top; }
td { overflow-wrap: anywhere; }
td:first-child { white-space: nowrap; word-break: normal; }
td.state-open { color: var(--bounced); font-weight: 600; }
td.state-closed { color: var(--delivered); }
.empty { color: var(--muted); font-style: italic; }
button { cursor: pointer; }
#outbound .stopped { background: #c92a2a; color: #fff; font-size: 18px; padding: 10px 14px; border-radius: 4px; }
button.danger { background: #c92a2a; color: #fff; border: 1px solid #a51111; border-radius: 3px; }
button.group-by.active { font-weight: 700; }
button.bulk { margin-right: 4px; }
.confirm { position: sticky; top: 0; z-index: 2; background: #fff9db; border: 1px solid #fcc419; padding: 8px 12px; border-radius: 4px; margin: 6px 0; font-weight: 600; }
#message-detail pre { white-space: pre-wrap; background: var(--bg); padding: 6px; font-size: 12px; }
#message-detail dl { display: grid; grid-template-columns: 120px 1fr; gap: 2px 8px; }
#message-detail dt { color: var(--muted); }
#dmarc-failing td.flag, #tlsrpt td.flag { color: var(--bounced); font-weight: 600; }
#queue-filter, #message-form { padding: 8px 0 0; margin: 0; max-width: none; display: block; }
`;
