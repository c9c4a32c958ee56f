import Tiefsee
extension WebChatAssets {
    /// The page's logic: sign-in, conversations (kept in the browser's localStorage), streamed
    /// answers over /v1/chat/completions, knowledge-base picker and upload, the passage viewer
    /// for [n] citations, and the model panel. Text from the server or the model reaches the
    /// page only through textContent or TiefseeMarkdown.render (which escapes it).
    static let appJS = #"""
"use strict";

const $ = (id) => document.getElementById(id);
const emptyView = $("empty");  // re-attached by renderConversation
const state = {
  auth: "open",        // open | api_key | users
  user: null,          // {name, admin, groups} when signed in
  apiKey: sessionStorage.getItem("tiefsee.key") || "",
  models: [],          // ids from /v1/models
  model: null,         // /api/model of the chosen model
  kbs: [],             // /api/knowledge
  conversations: [],
  current: null,       // the open conversation
  controller: null,    // AbortController of the answer being streamed
};

// ---- Server calls ------------------------------------------------------------------------

function authHeaders() {
  return state.apiKey ? { Authorization: "Bearer " + state.apiKey } : {};
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {}, authHeaders());
  const resp = await fetch(path, Object.assign({}, options, { headers, credentials: "same-origin" }));
  if (resp.status === 401 && !path.startsWith("/api/login")) {
    showLogin("Your session has ended; please sign in again.");
    throw new Error("not signed in");
  }
  return resp;
}

async function errorText(resp) {
  try { const j = await resp.json(); return (j.error && j.error.message) || resp.statusText; }
  catch (e) { return resp.status + " " + resp.statusText; }
}

function modelQuery() {
  return state.models.length > 1 && state.model ? "?model=" + encodeURIComponent(state.model.id) : "";
}

// ---- Sign-in -----------------------------------------------------------------------------

async function start() {
  const s = await (await fetch("/api/session", { headers: authHeaders() })).json();
  state.auth = s.auth;
  state.user = s.user;
  const signedIn = s.auth === "open" || s.user || (s.auth === "api_key" && state.apiKey);
  if (!signedIn) { showLogin(); return; }
  await boot();
}

function showLogin(message) {
  const keyMode = state.auth === "api_key";
  $("login-user-row").hidden = keyMode;
  $("login-password-row").hidden = keyMode;
  $("login-key-row").hidden = !keyMode;
  $("login-user").required = !keyMode;
  $("login-password").required = !keyMode;
  $("login-hint").textContent = keyMode ? "This server needs an API key." : "Sign in with your company account.";
  $("login-error").hidden = !message;
  $("login-error").textContent = message || "";
  $("login").hidden = false;
  (keyMode ? $("login-key") : $("login-user")).focus();
}

async function submitLogin(event) {
  event.preventDefault();
  $("login-error").hidden = true;
  if (state.auth === "api_key") {
    state.apiKey = $("login-key").value.trim();
    const r = await fetch("/v1/models", { headers: authHeaders() });
    if (!r.ok) { state.apiKey = ""; showLogin("That key was not accepted."); return; }
    sessionStorage.setItem("tiefsee.key", state.apiKey);
  } else {
    $("login-submit").disabled = true;
    const r = await fetch("/api/login", {
      method: "POST", headers: { "Content-Type": "application/json" }, credentials: "same-origin",
      body: JSON.stringify({ user: $("login-user").value, password: $("login-password").value }),
    });
    $("login-submit").disabled = false;
    if (!r.ok) { showLogin(await errorText(r)); return; }
    state.user = (await r.json()).user;
    $("login-password").value = "";
  }
  $("login").hidden = true;
  await boot();
}

async function logout() {
  if (state.auth === "api_key") sessionStorage.removeItem("tiefsee.key");
  else await fetch("/api/logout", { method: "POST", credentials: "same-origin" });
  location.reload();
}

// ---- Start-up: models, bases, conversations --------------------------------------------

async function boot() {
  $("account-name").textContent = state.user ? state.user.name : state.auth === "api_key" ? "API key" : "";
  $("logout").hidden = state.auth === "open";
  const models = await (await api("/v1/models")).json();
  state.models = models.data.map((m) => m.id);
  await loadModel(state.models[0]);
  await loadKnowledgeBases();
  loadConversations();
  if (!state.current) newConversation();
  renderConversation();
  $("prompt").focus();
}

async function loadModel(id) {
  const q = state.models.length > 1 ? "?model=" + encodeURIComponent(id) : "";
  const r = await api("/api/model" + q);
  if (!r.ok) { state.model = { id }; return; }
  state.model = await r.json();
  renderModelPanel();
}

async function loadKnowledgeBases() {
  const r = await api("/api/knowledge" + modelQuery());
  const j = r.ok ? await r.json() : { data: [] };
  state.kbs = j.data;
  const select = $("kb-select"), keep = select.value;
  select.replaceChildren(new Option("none", ""));
  for (const kb of state.kbs) {
    select.append(new Option(kb.name + " (" + kb.documents + " documents)", kb.name));
  }
  if (state.kbs.some((kb) => kb.name === keep)) select.value = keep;
  updateUploadButton();
}

function updateUploadButton() {
  const kb = state.kbs.find((k) => k.name === $("kb-select").value);
  $("upload-button").disabled = !(kb && kb.writable);
}

// ---- Conversations (localStorage, per user) ------------------------------------------------

function storageKey() { return "tiefsee.conversations." + (state.user ? state.user.name : state.auth); }

function loadConversations() {
  try { state.conversations = JSON.parse(localStorage.getItem(storageKey()) || "[]"); }
  catch (e) { state.conversations = []; }
  state.current = state.conversations[0] || null;
  renderConversationList();
}

function saveConversations() {
  const kept = state.conversations.filter((c) => c.messages.length > 0).slice(0, 50);
  localStorage.setItem(storageKey(), JSON.stringify(kept));
}

function newConversation() {
  if (state.current && state.current.messages.length === 0) { renderConversation(); return; }
  state.current = { id: Date.now().toString(36), title: "New chat", kb: $("kb-select").value, messages: [] };
  state.conversations.unshift(state.current);
  renderConversationList();
  renderConversation();
}

function renderConversationList() {
  const nav = $("conversations");
  nav.replaceChildren();
  for (const c of state.conversations) {
    const row = document.createElement("div");
    row.className = "conv" + (c === state.current ? " active" : "");
    const open = document.createElement("button");
    open.className = "open";
    open.textContent = c.title;
    open.onclick = () => { if (!state.controller) { state.current = c; renderConversationList(); renderConversation(); } };
    const del = document.createElement("button");
    del.className = "delete";
    del.title = "Delete";
    del.textContent = "×";
    del.onclick = () => {
      if (state.controller) return;
      state.conversations = state.conversations.filter((x) => x !== c);
      if (state.current === c) state.current = state.conversations[0] || null;
      saveConversations();
      if (!state.current) newConversation(); else { renderConversationList(); renderConversation(); }
    };
    row.append(open, del);
    nav.append(row);
  }
}

// ---- Messages ------------------------------------------------------------------------------

function renderConversation() {
  const box = $("messages");
  box.replaceChildren();
  const conv = state.current;
  emptyView.hidden = conv.messages.length > 0;
  box.append(emptyView);
  $("kb-select").value = state.kbs.some((k) => k.name === conv.kb) ? conv.kb : "";
  updateUploadButton();
  conv.messages.forEach((m, i) => box.append(messageView(m, i === conv.messages.length - 1)));
  updateContextMeter();
  box.scrollTop = box.scrollHeight;
}

// One message's element; an assistant message keeps references to its parts so a streamed
// answer updates them in place (the folded reasoning stays open or closed as the reader left it).
function messageView(m, isLast) {
  const el = document.createElement("div");
  el.className = "msg " + m.role;
  const who = document.createElement("div");
  who.className = "who";
  who.textContent = m.role === "user" ? (state.user ? state.user.name : "You") : (state.model ? state.model.id : "Assistant");
  const body = document.createElement("div");
  body.className = "body";
  el.append(who);
  if (m.role === "user") { body.textContent = m.content; el.append(body); return el; }

  const details = document.createElement("details");
  details.className = "reasoning";
  const summary = document.createElement("summary");
  const thought = document.createElement("div");
  thought.className = "thought";
  details.append(summary, thought);
  const sources = document.createElement("div");
  sources.className = "sources";
  const error = document.createElement("div");
  error.className = "error";
  const actions = document.createElement("div");
  actions.className = "actions";
  el.append(details, body, sources, error, actions);
  el.update = () => {
    details.hidden = !m.reasoning;
    summary.textContent = m.thinking ? "Thinking…" : m.thoughtSeconds >= 0.1 ? "Thought for " + m.thoughtSeconds.toFixed(1) + " s" : "Reasoning";
    thought.textContent = m.reasoning || "";
    body.innerHTML = TiefseeMarkdown.render(m.content || "", { citations: (m.sources || []).length });
    body.classList.toggle("cursor", !!m.streaming);
    body.querySelectorAll("button.cite").forEach((b) => { b.onclick = () => showPassage(m, Number(b.dataset.n)); });
    renderSources(sources, m);
    error.hidden = !m.error;
    error.textContent = m.error || "";
    renderActions(actions, m, isLast);
  };
  el.update();
  return el;
}

function renderSources(box, m) {
  box.replaceChildren();
  if ((m.sources || []).length) {
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = "Sources";
    box.append(label);
  }
  for (const s of m.sources || []) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = s.cited ? "cited" : "";
    b.textContent = "[" + s.index + "] " + s.citation;
    b.onclick = () => showPassage(m, s.index);
    box.append(b);
  }
}

function renderActions(box, m, isLast) {
  box.replaceChildren();
  if (m.streaming) return;
  if (isLast) {
    const regen = document.createElement("button");
    regen.className = "regenerate";
    regen.textContent = "Regenerate";
    regen.onclick = regenerate;
    box.append(regen);
  }
  const copy = document.createElement("button");
  copy.textContent = "Copy";
  copy.onclick = () => navigator.clipboard && navigator.clipboard.writeText(m.content || "");
  box.append(copy);
  if (m.stats) {
    const stats = document.createElement("span");
    stats.className = "stats";
    stats.textContent = m.stats;
    box.append(stats);
  }
}

function showPassage(m, n) {
  const s = (m.sources || []).find((x) => x.index === n);
  if (!s) return;
  $("passage-title").textContent = "[" + s.index + "] " + s.file;
  const where = [s.heading ? "Section: " + s.heading : "", s.page ? "Page " + s.page : ""].filter(Boolean);
  $("passage-where").textContent = where.join(" · ");
  $("passage-text").textContent = s.text || "(the passage text is not available)";
  $("passage").hidden = false;
}

// ---- Sending and streaming -------------------------------------------------------------------

function requestBody(conv) {
  const history = [];
  const system = $("p-system").value.trim();
  if (system) history.push({ role: "system", content: system });
  for (const m of conv.messages) {
    if (m.role === "user" || (m.role === "assistant" && !m.error && m.content)) history.push({ role: m.role, content: m.content });
  }
  const body = {
    model: state.model.id, messages: history, stream: true, stream_options: { include_usage: true },
    temperature: Number($("p-temperature").value), top_p: Number($("p-top-p").value),
    max_tokens: Number($("p-max-tokens").value),
  };
  if (conv.kb) body.knowledge = { kb: conv.kb, top_k: Number($("p-top-k").value) };
  if (state.model.reasoning) body.chat_template_kwargs = { thinking: $("p-think").checked, enable_thinking: $("p-think").checked };
  return body;
}

async function send(text) {
  const conv = state.current;
  if (conv.messages.length === 0) conv.title = text.slice(0, 48);
  conv.kb = $("kb-select").value;
  conv.messages.push({ role: "user", content: text });
  renderConversationList();
  await answer(conv);
}

async function regenerate() {
  const conv = state.current;
  if (state.controller || !conv.messages.length) return;
  if (conv.messages[conv.messages.length - 1].role === "assistant") conv.messages.pop();
  await answer(conv);
}

async function answer(conv) {
  const m = { role: "assistant", content: "", reasoning: "", sources: [], streaming: true, thinking: false };
  const body = requestBody(conv);
  conv.messages.push(m);
  renderConversation();
  const view = $("messages").lastElementChild;
  setBusy(true);
  state.controller = new AbortController();
  const started = performance.now();
  let firstToken = 0, thinkingSince = 0, pending = false;
  const redraw = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; view.update(); $("messages").scrollTop = $("messages").scrollHeight; });
  };
  try {
    const resp = await api("/v1/chat/completions", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), signal: state.controller.signal,
    });
    if (!resp.ok) throw new Error(await errorText(resp));
    await readEvents(resp, (chunk) => {
      if (chunk.error) { m.error = chunk.error.message; return; }
      const choice = chunk.choices && chunk.choices[0];
      if (choice && choice.delta) {
        if (choice.delta.reasoning_content) {
          if (!thinkingSince) thinkingSince = performance.now();
          m.reasoning += choice.delta.reasoning_content;
          m.thinking = true;
        }
        if (choice.delta.content) {
          if (m.thinking) m.thoughtSeconds = (performance.now() - thinkingSince) / 1000;
          m.content += choice.delta.content;
          m.thinking = false;
        }
        if ((choice.delta.content || choice.delta.reasoning_content) && !firstToken) firstToken = performance.now();
      }
      if (choice && choice.finish_reason) m.finish = choice.finish_reason;
      if (chunk.sources) m.sources = chunk.sources;
      if (chunk.usage) m.usage = chunk.usage;
      redraw();
    });
  } catch (e) {
    if (e.name === "AbortError") m.stopped = true;
    else if (e.message !== "not signed in") m.error = "The answer failed: " + e.message;
  }
  if (m.thinking) m.thoughtSeconds = (performance.now() - thinkingSince) / 1000;
  m.streaming = false;
  m.thinking = false;
  m.stats = answerStats(m, started, firstToken);
  state.controller = null;
  setBusy(false);
  saveConversations();
  renderConversation();
  refreshModelPanel();
}

function answerStats(m, started, firstToken) {
  const parts = [];
  if (m.stopped) parts.push("stopped");
  if (m.finish === "length") parts.push("cut at the token limit");
  if (m.usage) {
    parts.push(m.usage.completion_tokens + " tokens");
    // Tokens after the first over the time they took (too short a time says nothing).
    const seconds = (performance.now() - (firstToken || started)) / 1000;
    if (m.usage.completion_tokens > 2 && seconds >= 0.2) parts.push(((m.usage.completion_tokens - 1) / seconds).toFixed(1) + " tokens/s");
  }
  return parts.join(" · ");
}

// Server-sent events: "data: {json}" lines separated by blank lines, ending with "data: [DONE]".
async function readEvents(resp, onChunk) {
  const reader = resp.body.getReader(), decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") return;
        onChunk(JSON.parse(data));
      }
    }
  }
}

function setBusy(busy) {
  $("send").hidden = busy;
  $("stop").hidden = !busy;
  $("kb-select").disabled = busy;
}

// ---- Upload -------------------------------------------------------------------------------

function upload(file) {
  const kb = $("kb-select").value;
  if (!kb || !file) return;
  $("upload-status").hidden = false;
  $("upload-name").textContent = file.name;
  $("upload-progress").value = 0;
  $("upload-progress").max = 100;
  $("upload-text").textContent = "uploading…";
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/knowledge/" + encodeURIComponent(kb) + "/documents?filename=" + encodeURIComponent(file.name) +
           (state.models.length > 1 ? "&model=" + encodeURIComponent(state.model.id) : ""));
  for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
  xhr.setRequestHeader("Content-Type", "application/octet-stream");
  xhr.upload.onprogress = (e) => {
    if (!e.lengthComputable) return;
    $("upload-progress").value = Math.round(100 * e.loaded / e.total);
    $("upload-text").textContent = Math.round(100 * e.loaded / e.total) + "%";
  };
  // Sent: the server now extracts, chunks and embeds it (the bar shows no fraction meanwhile).
  xhr.upload.onload = () => { $("upload-progress").removeAttribute("value"); $("upload-text").textContent = "indexing…"; };
  xhr.onload = async () => {
    $("upload-progress").value = 100;
    let j = {};
    try { j = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
    if (xhr.status === 200) {
      $("upload-text").textContent = j.status + ", " + j.chunks + " passages embedded in " + j.seconds.toFixed(1) + " s";
      $("upload-status").dataset.done = "1";
      await loadKnowledgeBases();
    } else {
      $("upload-text").textContent = "failed: " + ((j.error && j.error.message) || xhr.status);
      $("upload-status").dataset.done = "error";
    }
  };
  xhr.onerror = () => { $("upload-text").textContent = "failed: the connection broke"; $("upload-status").dataset.done = "error"; };
  delete $("upload-status").dataset.done;
  xhr.send(file);
}

// ---- Model panel ----------------------------------------------------------------------------

function formatCount(n) {
  for (const [unit, v] of [["T", 1e12], ["B", 1e9], ["M", 1e6], ["K", 1e3]]) {
    if (n >= v) return (n / v >= 10 ? (n / v).toFixed(0) : (n / v).toFixed(1)) + unit;
  }
  return String(n);
}

function formatBytes(b) {
  return b >= 1 << 30 ? (b / (1 << 30)).toFixed(1) + " GiB" : (b / (1 << 20)).toFixed(0) + " MiB";
}

function renderModelPanel() {
  const m = state.model;
  $("model-name").textContent = m.id;
  const facts = [
    ["Architecture", m.family || m.architecture],
    ["Parameters", m.parameters && formatCount(m.parameters.total)],
    ["Active per token", m.parameters && m.moe ? formatCount(m.parameters.active_per_token) : null],
    ["Weights", m.weights_type && m.weights_type + ", " + formatBytes(m.weights_bytes)],
    ["Layers", m.layers],
    ["Heads (KV)", m.heads && m.heads + " (" + m.kv_heads + ")"],
    ["Context", m.context_length && m.context_length.toLocaleString() + " tokens"],
    ["Parallel", m.slots && m.slots + " (" + m.slots_busy + " busy)"],
  ];
  const dl = $("model-facts");
  dl.replaceChildren();
  for (const [k, v] of facts) {
    if (v === null || v === undefined) continue;
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = k;
    dd.textContent = v;
    dl.append(dt, dd);
  }
  $("think-row").hidden = !m.reasoning;
  renderExperts(m.moe);
  updateContextMeter();
}

async function refreshModelPanel() {
  if (!state.model) return;
  const r = await api("/api/model" + modelQuery());
  if (r.ok) { state.model = await r.json(); renderModelPanel(); }
}

function updateContextMeter() {
  if (!state.model || !state.current) return;
  const last = [...state.current.messages].reverse().find((m) => m.usage);
  const used = last ? last.usage.total_tokens : 0, max = state.model.context_length || 1;
  const share = Math.min(1, used / max);
  $("context-bar").style.width = (100 * share).toFixed(1) + "%";
  $("context-bar").classList.toggle("full", share > 0.9);
  $("context-text").textContent = used.toLocaleString() + " of " + max.toLocaleString() + " tokens used by this conversation (" + (100 * share).toFixed(1) + "%)";
}

// The experts picture: one row per MoE layer, one cell per routed expert, shaded by the share
// of routed tokens that chose it; the caption gives the share of experts a token uses.
function renderExperts(moe) {
  $("moe").hidden = !moe;
  if (!moe) return;
  const pct = (100 * moe.active_share).toFixed(1);
  $("moe-text").textContent = moe.experts_per_token + " of " + moe.experts + " routed experts per token (" + pct + "%)" +
    (moe.shared_experts ? ", plus " + moe.shared_experts + " shared" : "") + " · " + moe.moe_layers.length + " MoE layers";
  const canvas = $("moe-canvas"), ctx = canvas.getContext("2d");
  const rows = moe.moe_layers.length, cols = moe.experts;
  const cell = Math.max(2, Math.min(14, Math.floor(240 / cols)));
  canvas.width = cols * cell;
  canvas.height = Math.max(1, rows) * cell;
  ctx.fillStyle = "#f1f3f5";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const routing = moe.routing || { tokens: [], counts: [] };
  for (let r = 0; r < rows; r++) {
    const tokens = routing.tokens[r] || 0, counts = routing.counts[r] || [];
    for (let c = 0; c < cols; c++) {
      const share = tokens ? (counts[c] || 0) / tokens : 0;
      if (share > 0) {
        ctx.fillStyle = "rgba(11, 107, 203, " + (0.15 + 0.85 * share).toFixed(3) + ")";
        ctx.fillRect(c * cell, r * cell, cell - (cell > 3 ? 1 : 0), cell - (cell > 3 ? 1 : 0));
      }
    }
  }
}

// ---- Wiring ---------------------------------------------------------------------------------

function wire() {
  $("login-form").addEventListener("submit", submitLogin);
  $("logout").onclick = logout;
  $("new-chat").onclick = () => { if (!state.controller) newConversation(); };
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("prompt").value.trim();
    if (!text || state.controller) return;
    $("prompt").value = "";
    autosize();
    send(text);
  });
  $("prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); $("composer").requestSubmit(); }
  });
  $("prompt").addEventListener("input", autosize);
  $("stop").onclick = () => state.controller && state.controller.abort();
  $("kb-select").onchange = () => {
    updateUploadButton();
    if (state.current) state.current.kb = $("kb-select").value;  // from the next question on
  };
  $("upload-button").onclick = () => $("upload-input").click();
  $("upload-dismiss").onclick = () => { $("upload-status").hidden = true; };
  $("upload-input").onchange = () => { upload($("upload-input").files[0]); $("upload-input").value = ""; };
  $("model-toggle").onclick = () => { $("model-panel").hidden = !$("model-panel").hidden; };
  $("passage-close").onclick = () => { $("passage").hidden = true; };
  $("passage").onclick = (e) => { if (e.target === $("passage")) $("passage").hidden = true; };
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") $("passage").hidden = true; });
}

function autosize() {
  const p = $("prompt");
  p.style.height = "auto";
  p.style.height = Math.min(200, p.scrollHeight + 2) + "px";
  p.style.overflowY = p.scrollHeight > 200 ? "auto" : "hidden";
}

wire();
start().catch((e) => { document.body.dataset.error = e.message; console.error(e); });
"""#
}
