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

// A new list of waiting approvals, merged so that nothing a person is doing is lost: a call
// still waiting keeps its block (and whatever was typed into it), an answered one stays with
// its answer until the page is reloaded, new ones are added.
function mergeApprovals(html) {
  const list = document.getElementById("approvals");
  if (!list || typeof html !== "string") return;
  const holder = document.createElement("div");
  holder.innerHTML = html;
  const shown = new Map();
  for (const block of list.querySelectorAll("[data-approval]")) shown.set(block.dataset.approval, block);
  const next = [...holder.querySelectorAll("[data-approval]")].map(
    (block) => shown.get(block.dataset.approval) || block,
  );
  for (const block of shown.values()) {
    if (block.dataset.answered && !next.includes(block)) next.push(block);
  }
  if (next.length) list.replaceChildren(...next);
  else list.innerHTML = html; // the "nothing waits" line
  list.dataset.refreshed = String(Number(list.dataset.refreshed || 0) + 1);
}

async function refreshApprovals(seq) {
  const list = document.getElementById("approvals");
  if (!list || !list.dataset.refresh) return;
  const url = `${list.dataset.refresh}?min_seq=${Number(seq) || 0}`;
  const response = await fetch(url, { headers: { Accept: "text/html" } });
  if (response.ok) mergeApprovals(await response.text());
}

function answerOf(block, kind) {
  const reason = block.querySelector("input.reason").value;
  const by = block.querySelector("input.by").value;
  if (kind === "deny") {
    if (!reason.trim()) throw new Error("a denial needs a reason: the task fails with it");
    return { decision: "deny", reason, by };
  }
  const answer = { decision: "approve", reason, by };
  if (kind === "approve-edited") {
    let args;
    try {
      args = JSON.parse(block.querySelector("textarea.args").value);
    } catch (error) {
      throw new Error(`the arguments are not JSON: ${error.message}`);
    }
    if (args === null || typeof args !== "object" || Array.isArray(args)) {
      throw new Error("the arguments must be a JSON object");
    }
    answer.args = args;
  }
  return answer;
}

async function answerApproval(button, kind) {
  const block = button.closest("[data-approval]");
  const state = block.querySelector(".state");
  let answer;
  try {
    answer = answerOf(block, kind);
  } catch (error) {
    state.textContent = error.message;
    state.dataset.result = "invalid";
    return;
  }
  const buttons = block.querySelectorAll("button");
  for (const one of buttons) one.disabled = true;
  state.textContent = "sent, waiting for the planner…";
  delete state.dataset.result;
  const response = await fetch("/approvals/answer", {
    method: "POST",
    headers: { ...ACTION_HEADER, "Content-Type": "application/json" },
    body: JSON.stringify({ approval_id: block.dataset.approval, ...answer }),
  });
  const body = await response.json();
  if (response.ok) {
    state.textContent = body.summary;
    state.dataset.result = body.decision === "approval_granted" ? "granted" : "denied";
    block.dataset.answered = "1";
  } else {
    state.textContent = body.error || body.summary || `HTTP ${response.status}`;
    state.dataset.result = "rejected";
    for (const one of buttons) one.disabled = false;
  }
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
    const seq = JSON.parse(message.data).seq;
    refreshGoals(seq).catch(() => setLive("reconnecting"));
    refreshApprovals(seq).catch(() => setLive("reconnecting"));
  });
  source.addEventListener("approvals", (message) => mergeApprovals(JSON.parse(message.data).html));
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
    const answer = event.target.closest(".approval button");
    if (answer) {
      const kind = ["approve-edited", "approve", "deny"].find((k) => answer.classList.contains(k));
      answerApproval(answer, kind).catch((error) => {
        const state = answer.closest("[data-approval]").querySelector(".state");
        state.textContent = String(error);
        state.dataset.result = "rejected";
        for (const one of answer.closest("[data-approval]").querySelectorAll("button")) one.disabled = false;
      });
    }
  });
});
