// The live request feed: rows pushed by the server over a websocket (proxy/consumers.py).
// Every value is inserted as text, never as HTML.
"use strict";
(() => {
  const table = document.getElementById("live-feed");
  if (!table) {
    return;
  }
  const statusLine = document.getElementById("live-status");
  const names = JSON.parse(document.getElementById("live-organization-names").textContent);
  const showOrganization = table.tHead.rows[0].cells.length === 10;
  const body = table.tBodies[0];
  const MAX_ROWS = 200;
  let retry = 1000;

  function cell(row, text, numeric = false) {
    const td = row.insertCell();
    td.textContent = text;
    if (numeric) {
      td.className = "num";
    }
  }

  function add(event) {
    const row = body.insertRow(0);
    row.className = "fresh" + (event.status_code >= 400 ? " error" : "");
    row.dataset.requestId = event.request_id;
    cell(row, (event.created_at || "").slice(11, 19));
    if (showOrganization) {
      cell(row, names[String(event.organization_id)] || `#${event.organization_id}`);
    }
    cell(row, event.model);
    cell(row, event.endpoint);
    cell(row, event.status_code + (event.error_code ? ` ${event.error_code}` : ""), true);
    cell(row, event.prompt_tokens, true);
    cell(row, event.completion_tokens, true);
    cell(row, `${Math.round(event.latency_ms)} ms`, true);
    cell(row, event.cache);
    cell(row, event.tokens_saved, true);
    while (body.rows.length > MAX_ROWS) {
      body.deleteRow(-1);
    }
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}${statusLine.dataset.url}`);
    let heartbeat = null;
    socket.addEventListener("open", () => {
      retry = 1000;
      statusLine.textContent = "Connected: waiting for requests.";
      statusLine.dataset.state = "open";
      // The server only publishes to feeds that a page has marked as watched lately.
      heartbeat = setInterval(() => socket.send(JSON.stringify({ type: "ping" })), 30000);
    });
    socket.addEventListener("message", (message) => {
      const data = JSON.parse(message.data);
      if (data.type === "request") {
        add(data.event);
      }
    });
    socket.addEventListener("close", () => {
      clearInterval(heartbeat);
      statusLine.dataset.state = "closed";
      statusLine.textContent = `Disconnected; retrying in ${retry / 1000}s.`;
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
    });
  }

  connect();
})();
