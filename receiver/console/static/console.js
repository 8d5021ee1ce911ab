// The console's live parts: polling the overview, the rooms wall, the events tail (SSE)
// and the dead-letter actions. No inline scripts (the CSP forbids them).
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

async function api(path, options = {}) {
  const headers = { "X-CSRF-Token": csrf(), ...(options.headers || {}) };
  const response = await fetch(path, { credentials: "same-origin", ...options, headers });
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (!response.ok) {
    const error = new Error((body && body.detail) || response.statusText);
    error.status = response.status;
    throw error;
  }
  return body;
}

function notice(text, isError) {
  const element = document.getElementById("notice");
  element.textContent = text;
  element.className = isError ? "error" : "ok";
  element.hidden = false;
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text == null ? "" : String(text);
  if (className) td.className = className;
  return td;
}

function link(row, text, href) {
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  row.insertCell().appendChild(a);
}

function age(seconds) {
  const s = Math.max(0, Date.now() / 1000 - seconds);
  if (s < 60) return `${s.toFixed(0)} s`;
  if (s < 3600) return `${(s / 60).toFixed(0)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function total(samples, outcome) {
  return samples.filter((s) => !outcome || s.labels.outcome === outcome)
    .reduce((sum, s) => sum + s.value, 0);
}

function overview() {
  const points = [];
  let last = null;
  async function tick() {
    const data = await api("/api/overview");
    document.getElementById("ready").textContent = data.ready ? "yes" : "no";
    document.getElementById("depth").textContent = data.intake.depth;
    document.getElementById("oldest").textContent = `${data.intake.oldest_age_seconds.toFixed(1)} s`;
    document.getElementById("dead").textContent = data.dead_letters;
    document.getElementById("room-count").textContent = data.rooms;
    const callbacks = data.counters.receiver_callbacks;
    const now = { t: data.time, accepted: total(callbacks, "accepted"), all: total(callbacks) };
    if (last) {
      const dt = Math.max(0.001, now.t - last.t);
      const accepted = (now.accepted - last.accepted) / dt;
      const rejected = (now.all - now.accepted - (last.all - last.accepted)) / dt;
      document.getElementById("rate-accepted").textContent = accepted.toFixed(1);
      document.getElementById("rate-rejected").textContent = rejected.toFixed(1);
      points.push(accepted + rejected);
      if (points.length > 1800) points.shift();
      const top = Math.max(1, ...points);
      document.getElementById("rate-line").setAttribute("points", points
        .map((v, i) => `${(i / 1799) * 600},${120 - (v / top) * 115}`).join(" "));
    }
    last = now;
  }
  tick();
  setInterval(() => tick().catch(() => {}), 2000);
}

function rooms() {
  async function tick() {
    const data = await api("/api/rooms");
    const wall = document.getElementById("room-wall");
    wall.replaceChildren();
    for (const room of data.rooms) {
      const tile = document.createElement("a");
      tile.className = `tile state-${(room.stream_state || "unknown").toLowerCase()}`;
      tile.href = `/rooms/${encodeURIComponent(room.room_id)}`;
      tile.dataset.room = room.room_id;
      const lines = [
        room.room_name || room.room_id,
        (room.stream_state || "no stream event") +
          (room.stream_state_since ? ` · ${age(room.stream_state_since)}` : ""),
        `job ${room.job_state || "?"}`,
        `script ${room.script || "-"}`,
        `last event ${age(room.last_event_at)} ago`,
      ];
      lines.forEach((text, index) => {
        const part = document.createElement(index === 0 ? "b" : "span");
        if (index === 0) part.className = "room-name";
        if (index === 1) part.className = "stream";
        part.textContent = text;
        tile.appendChild(part);
      });
      wall.appendChild(tile);
    }
  }
  setInterval(() => tick().catch(() => {}), 3000);
}

function eventRow(body, event, atTop) {
  const existing = body.querySelector(`tr[data-id="${CSS.escape(event.id)}"]`);
  const row = existing || (atTop ? body.insertRow(0) : body.insertRow());
  row.replaceChildren();
  row.dataset.id = event.id;
  cell(row, new Date(event.seen_at * 1000).toLocaleTimeString());
  link(row, event.room_id, `/rooms/${encodeURIComponent(event.room_id)}`);
  link(row, event.event_type, `/events/${encodeURIComponent(event.id)}`);
  cell(row, event.state);
  cell(row, event.enrichment);
  cell(row, event.outcome, `outcome-${event.outcome}`);
}

function events() {
  const body = document.querySelector("#events tbody");
  const filters = new URLSearchParams(window.location.search);
  let cursor = null;
  async function page() {
    const query = new URLSearchParams(filters);
    if (cursor) query.set("cursor", cursor);
    const data = await api(`/api/events?${query}`);
    data.events.forEach((event) => eventRow(body, event, false));
    cursor = data.next_cursor;
    document.getElementById("more").hidden = !cursor;
  }
  document.getElementById("more").addEventListener("click", () => page());
  page();
  let source = null;
  const tail = document.getElementById("tail");
  function follow() {
    if (source) { source.close(); source = null; }
    if (!tail.checked) return;
    source = new EventSource(`/api/events/stream?${filters}`);
    source.onmessage = (message) => eventRow(body, JSON.parse(message.data), true);
  }
  tail.addEventListener("change", follow);
  follow();
}

function deadLetters() {
  const body = document.querySelector("#letters tbody");
  const sinkInput = document.getElementById("letter-sink");
  const sink = () => sinkInput.value.trim();
  async function load() {
    const query = sink() ? `?sink=${encodeURIComponent(sink())}` : "";
    const data = await api(`/api/dead-letters${query}`);
    document.getElementById("letter-total").textContent = data.total;
    body.replaceChildren();
    for (const letter of data.dead_letters) {
      const row = body.insertRow();
      row.dataset.id = letter.id;
      cell(row, letter.id);
      cell(row, letter.sink);
      cell(row, letter.event_id);
      cell(row, letter.attempts);
      cell(row, letter.last_error);
      const button = document.createElement("button");
      button.textContent = "Replay";
      button.className = "replay";
      button.addEventListener("click", async () => {
        try {
          await api(`/api/dead-letters/${letter.id}/replay`, { method: "POST" });
          notice(`Dead letter ${letter.id} replayed.`, false);
        } catch (error) {
          notice(`Replay refused: ${error.message}`, true);
        }
        load();
      });
      row.insertCell().appendChild(button);
    }
  }
  document.getElementById("letter-filters").addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  document.getElementById("replay-all").addEventListener("click", async () => {
    const query = sink() ? `?sink=${encodeURIComponent(sink())}` : "";
    const preview = await api(`/api/dead-letters/replay${query}`);
    if (!window.confirm(`Replay ${preview.count} dead letter(s)?`)) return;
    try {
      const result = await api("/api/dead-letters/replay", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ sink: sink() || null, expected: preview.count }),
      });
      notice(`Replayed ${result.replayed}, failed ${result.failed.length}.`, false);
    } catch (error) {
      notice(`Replay refused: ${error.message}`, true);
    }
    load();
  });
  document.getElementById("purge").addEventListener("click", async () => {
    const query = sink() ? `?sink=${encodeURIComponent(sink())}` : "";
    const preview = await api(`/api/dead-letters/replay${query}`);
    if (!window.confirm(`Delete ${preview.count} dead letter(s) for good?`)) return;
    try {
      const result = await api(`/api/dead-letters${query}`, { method: "DELETE" });
      notice(`Purged ${result.purged}.`, false);
    } catch (error) {
      notice(`Purge refused: ${error.message}`, true);
    }
    load();
  });
  load();
}

document.addEventListener("DOMContentLoaded", () => {
  const logout = document.getElementById("logout-form");
  if (logout) {
    logout.addEventListener("submit", async (event) => {
      event.preventDefault();
      await fetch("/logout", { method: "POST", headers: { "X-CSRF-Token": csrf() } });
      window.location.assign("/login");
    });
  }
  const pages = { overview, rooms, events, dead_letters: deadLetters };
  const start = pages[document.body.dataset.page];
  if (start) start();
});
