// The dashboard: polls /api/overview of the node that served it and redraws.
// The token comes from the page's own URL (#token=...): a fragment never reaches
// a server or its logs, and the script sends it as a bearer token.
"use strict";

const POLL_MS = 1000;
const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
let previous = null; // the last answer, for rates

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function fill(tableId, items, draw) {
  const body = document.querySelector(`#${tableId} tbody`);
  body.replaceChildren();
  for (const item of items) draw(body.insertRow(), item);
}

function total(counts) {
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

function rate(now, key) {
  if (!previous) return "–";
  const seconds = now.time - previous.time;
  if (seconds <= 0) return "–";
  return ((total(now.stanzas[key]) - total(previous.stanzas[key])) / seconds).toFixed(1);
}

function draw(o) {
  document.getElementById("node").textContent = o.node;
  document.getElementById("sessions").textContent = o.sessions;
  document.getElementById("rate-in").textContent = rate(o, "in");
  document.getElementById("rate-out").textContent = rate(o, "out");
  document.getElementById("redis").textContent = o.redis ? `${o.redis.heartbeat_ms.toFixed(2)} ms (${o.redis.failures} failures)` : "no Redis (node alone)";
  document.getElementById("ready").textContent = o.ready ? "yes" : "no";
  document.getElementById("scope").textContent = o.nodes.length > 1 ? `cluster of ${o.nodes.length}` : "node";
  fill("nodes", o.nodes, (row, n) => {
    row.className = n.alive ? "alive" : "dead";
    row.dataset.node = n.id;
    cell(row, n.id);
    cell(row, n.alive ? "alive" : "dead", "state");
    cell(row, n.heartbeat_age === null ? "expired" : `${n.heartbeat_age.toFixed(1)} s ago`);
    cell(row, n.sessions, "num sessions");
    cell(row, n.host);
  });
  fill("rooms", o.rooms, (row, r) => { cell(row, r.jid); cell(row, r.node); cell(row, r.occupants, "num"); });
  fill("burials", o.burials, (row, b) => { cell(row, b.node); cell(row, b.at); cell(row, b.sessions, "num"); cell(row, b.rerouted, "num"); });
  previous = o;
}

async function poll() {
  const status = document.getElementById("status");
  try {
    const response = await fetch("../api/overview", { headers: { Authorization: `Bearer ${token}` }, cache: "no-store" });
    if (!response.ok) throw new Error((await response.text()).trim());
    draw(await response.json());
    status.textContent = `updated ${new Date().toLocaleTimeString()}`;
    status.className = "";
    document.body.dataset.updated = String(Date.now());
  } catch (error) {
    status.textContent = `cannot read the node: ${error.message}`;
    status.className = "stale";
  }
  setTimeout(poll, POLL_MS);
}

poll();
