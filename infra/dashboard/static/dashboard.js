// agora's dashboard: live updates over server-sent events, and the retry button. No build
// step, no dependency: the server renders every piece of HTML; this file only swaps it in.
"use strict";

const ACTION_HEADER = { "X-Agora-Dashboard": "1" };

function setLive(state) {
  const badge = document.getElementById("live-state");
  if (badge) {
    badge.textContent = state;
    badge.dataset.state = state;
  }
}

function replace(id, html) {
  const node = document.getElementById(id);
  if (node && typeof html === "string") node.innerHTML = html;
}

async function refreshGoals(seq) {
  const table = document.querySelector("table.goals");
  if (!table) return;
  // min_seq: the rows must include the change the server announced (the views may lag).
  const url = `${table.dataset.refresh}&min_seq=${Number(seq) || 0}`;
  const response = await fetch(url, { headers: { Accept: "text/html" } });
  if (!response.ok) return;
  const holder = document.createElement("table");
  holder.innerHTML = await response.text();
  table.querySelector("tbody").replaceWith(holder.querySelector("tbody"));
  table.querySelector("tfoot").replaceWith(holder.querySelector("tfoot"));
  table.dataset.refreshed = String(Number(table.dataset.refreshed || 0) + 1);
}

function showDeltas(deltas) {
  const out = document.getElementById("live-output");
  if (!out) return;
  for (const delta of deltas) {
    if (delta.first || out.classList.contains("empty")) {
      out.textContent = "";
      out.classList.remove("empty");
      out.dataset.purpose = delta.purpose || "";
    }
    out.textContent += delta.text;
    if (delta.done) out.textContent += `\n— ${delta.model} (${delta.finish_reason || "done"})\n`;
  }
}

function follow(url) {
  const source = new EventSource(url);
  source.onopen = () => setLive("live");
  source.onerror = () => setLive("reconnecting");
  source.addEventListener("goals", (message) => {
    refreshGoals(JSON.parse(message.data).seq).catch(() => setLive("reconnecting"));
  });
  source.addEventListener("goal", (message) => {
    const data = JSON.parse(message.data);
    replace("timeline", data.timeline);
    replace("plan", data.plan);
    replace("context", data.context);
    const badge = document.querySelector("#goal-status .badge");
    if (badge) {
      badge.textContent = data.status;
      badge.className = `badge ${data.status}`;
    }
    document.body.dataset.events = String(data.events);
  });
  source.addEventListener("facts", (message) => replace("facts", JSON.parse(message.data).html));
  source.addEventListener("delta", (message) => showDeltas(JSON.parse(message.data)));
}

async function retry(button) {
  const record = button.dataset.record;
  // The row (or block) around the button: the button carries data-record itself.
  const state = button.parentElement.closest("[data-record]").querySelector(".state");
  button.disabled = true;
  const response = await fetch(`/dlq/${record}/retry`, { method: "POST", headers: ACTION_HEADER });
  const body = await response.json();
  if (response.ok) {
    state.textContent = body.already
      ? `redriven before (copy ${body.copy_seq})`
      : `redriven to ${body.consumer} (copy ${body.copy_seq})`;
  } else {
    state.textContent = body.error;
    button.disabled = false;
  }
  state.dataset.result = response.ok ? "ok" : "error";
}

document.addEventListener("DOMContentLoaded", () => {
  if (document.body.dataset.stream) follow(document.body.dataset.stream);
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.retry");
    if (button) retry(button).catch((error) => { button.disabled = false; console.error(error); });
  });
});
