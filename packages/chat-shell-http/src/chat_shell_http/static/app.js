// The chat page of `chat-shell serve` (docs/playground.md).
//
// A turn is a run of the server (POST /v1/response). While it streams, the page keeps the run's
// id, the seq of the last event it showed and the answer so far in session storage; after a
// dropped connection or a reload it re-attaches with Last-Event-ID and skips any event it has
// already shown, so no text appears twice.
import { Api, ApiError } from "./api.js";
import { Turn, el, renderHistory, userMessage } from "./render.js";

const PENDING = "chat-shell.pending"; // {run, session, seq, user, fresh, turn}: the run shown
const SESSION = "chat-shell.session"; // the session on screen
const MODEL = "chat-shell.model"; // the picked model ("": the server's default)
const OTHER = "\u0000other"; // the picker's "other model" choice

const api = new Api();
const $ = (id) => document.getElementById(id);
const ui = {
  messages: $("messages"),
  sessions: $("sessions"),
  title: $("title"),
  status: $("status"),
  composer: $("composer"),
  input: $("input"),
  send: $("send"),
  stop: $("stop"),
  model: $("model"),
  modelOther: $("model-other"),
  newChat: $("new-chat"),
  forgetKey: $("forget-key"),
  keyDialog: $("key-dialog"),
  keyForm: $("key-form"),
  keyInput: $("key-input"),
  keyError: $("key-error"),
};

let session = sessionStorage.getItem(SESSION); // null: a new chat, its id given by the server
let live = null; // {pending, turn, controller}: the run this page follows
let saveTimer = null;
const titles = new Map(); // session id -> title, from the session list

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function status(text, kind = "") {
  ui.status.textContent = text;
  ui.status.className = kind;
}

// -- API keys ---------------------------------------------------------------------------------

let keyPrompt = null;

// Asks for a key until the server accepts one (one prompt, whoever needs it).
function askKey(reason) {
  keyPrompt ??= new Promise((resolve) => {
    ui.keyError.textContent = api.key ? reason : "";
    api.key = null;
    ui.keyInput.value = "";
    ui.keyDialog.showModal();
    const submit = async (event) => {
      event.preventDefault();
      api.key = ui.keyInput.value.trim();
      try {
        await api.call("GET", "/v1/config");
      } catch (error) {
        api.key = null;
        ui.keyError.textContent =
          error.status === 401 ? "The server does not accept this key." : error.message;
        return;
      }
      ui.keyForm.removeEventListener("submit", submit);
      ui.keyInput.value = "";
      ui.keyDialog.close();
      ui.forgetKey.hidden = false;
      resolve();
    };
    ui.keyForm.addEventListener("submit", submit);
  }).finally(() => {
    keyPrompt = null;
  });
  return keyPrompt;
}

// Runs an API call, asking for a key first when the server wants one.
async function withKey(call) {
  for (;;) {
    try {
      return await call();
    } catch (error) {
      if (error.status !== 401) throw error;
      await askKey(error.message);
    }
  }
}

// -- models -----------------------------------------------------------------------------------

function fillModels(config) {
  const wildcard = /[*?[]/;
  const names = config.allowed_models.filter((m) => !wildcard.test(m) && m !== config.model);
  const patterns = config.allowed_models.filter((m) => wildcard.test(m));
  const options = [el("option", { value: "" }, `${config.model} (default)`)];
  for (const name of names) options.push(el("option", { value: name }, name));
  if (patterns.length) options.push(el("option", { value: OTHER }, "other…"));
  ui.model.replaceChildren(...options);
  ui.modelOther.placeholder = patterns.join(", ");
  const saved = sessionStorage.getItem(MODEL) ?? "";
  if (saved && !names.includes(saved) && patterns.length) {
    ui.model.value = OTHER;
    ui.modelOther.value = saved;
  } else {
    ui.model.value = names.includes(saved) ? saved : "";
  }
  ui.modelOther.hidden = ui.model.value !== OTHER;
}

function pickedModel() {
  const value = ui.model.value === OTHER ? ui.modelOther.value.trim() : ui.model.value;
  sessionStorage.setItem(MODEL, value);
  return value || undefined;
}

// -- sessions ---------------------------------------------------------------------------------

async function refreshSessions() {
  let page;
  try {
    page = await withKey(() => api.call("GET", "/v1/sessions?limit=100"));
  } catch (error) {
    status(`Sessions: ${error.message}`, "error");
    return;
  }
  for (const info of page.sessions) if (info.title) titles.set(info.id, info.title);
  if (session && titles.has(session)) ui.title.textContent = titles.get(session);
  const items = page.sessions.map((info) => {
    const when = new Date(info.updated_at * 1000).toLocaleString();
    const button = el(
      "button",
      { type: "button", title: info.id },
      el("span", { class: "name" }, info.title || info.id),
      el("span", { class: "meta" }, `${when} · ${info.message_count} messages`),
    );
    button.addEventListener("click", () => openSession(info.id));
    return el("li", { "data-session": info.id, class: info.id === session ? "current" : null }, button);
  });
  ui.sessions.replaceChildren(...items);
}

function showSession(id) {
  session = id;
  if (id) sessionStorage.setItem(SESSION, id);
  else sessionStorage.removeItem(SESSION);
  ui.title.textContent = id ? (titles.get(id) ?? id) : "New chat";
  for (const item of ui.sessions.children) {
    item.classList.toggle("current", item.dataset.session === id);
  }
}

// Stops following the run on screen; the run itself goes on on the server.
function leaveRun() {
  if (!live) return;
  live.controller?.abort();
  live = null;
  sessionStorage.removeItem(PENDING);
  busy(false);
}

async function openSession(id) {
  leaveRun();
  showSession(id);
  ui.messages.replaceChildren();
  status("");
  try {
    const page = await withKey(() => api.call("GET", `/v1/sessions/${encodeURIComponent(id)}/history`));
    if (session !== id) return; // another session was opened meanwhile
    renderHistory(ui.messages, page.messages);
    scrollDown(true);
  } catch (error) {
    status(`History: ${error.message}`, "error");
  }
}

function newChat() {
  leaveRun();
  showSession(null);
  ui.messages.replaceChildren();
  status("");
  ui.input.focus();
}

// -- runs -------------------------------------------------------------------------------------

function busy(running) {
  ui.send.hidden = running;
  ui.stop.hidden = !running;
  ui.stop.disabled = !live?.pending.run;
}

function save(pending) {
  clearTimeout(saveTimer);
  saveTimer = null;
  if (live?.pending === pending) sessionStorage.setItem(PENDING, JSON.stringify(pending));
}

// Session storage is written at most every 250 ms while text streams (and when the page goes
// away); each write holds the answer and the seq of its last event together.
function saveSoon(pending) {
  saveTimer ??= setTimeout(() => save(pending), 250);
}

function nearBottom() {
  const m = ui.messages;
  return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
}

function scrollDown(force = false) {
  if (force || nearBottom()) {
    requestAnimationFrame(() => {
      ui.messages.scrollTop = ui.messages.scrollHeight;
    });
  }
}

function receive(pending, turn, event) {
  if (event.seq <= pending.seq) return; // shown already
  const stick = nearBottom();
  pending.seq = event.seq;
  turn.apply(event);
  pending.turn = turn.state;
  saveSoon(pending);
  scrollDown(stick);
}

// Follows a run to its `complete` event: starts it (`body`) or re-attaches after `pending.seq`,
// and re-attaches again whenever the stream is cut.
async function follow(pending, turn, body) {
  const me = { pending, turn, controller: null };
  live = me;
  busy(true);
  let delay = 250;
  while (live === me && !turn.done) {
    const controller = new AbortController();
    me.controller = controller;
    try {
      await api.stream({
        run: pending.run ?? undefined,
        body,
        after: pending.seq,
        signal: controller.signal,
        onOpen(run, sessionId) {
          pending.run = run;
          pending.session = sessionId;
          if (session !== sessionId) showSession(sessionId);
          save(pending);
          busy(true);
          status("");
          delay = 250;
        },
        onEvent: (event) => receive(pending, turn, event),
      });
      if (!turn.done) status("The stream was cut: re-attaching…", "warn");
    } catch (error) {
      if (controller.signal.aborted || live !== me) return;
      if (error.status === 401) {
        await askKey(error.message);
        continue;
      }
      if (!pending.run) {
        // refused before it started (busy session, model not allowed …), or never reached
        turn.add({ type: "error", code: error.code ?? "network", message: error.message });
        turn.finish("not-sent", null);
        ui.input.value ||= pending.user;
        break;
      }
      if (error instanceof ApiError) {
        status(
          error.status === 404 ? "The run is no longer kept by the server." : error.message,
          "error",
        );
        break;
      }
      status("Connection lost: re-attaching…", "warn");
    }
    if (!turn.done) {
      await sleep(delay);
      delay = Math.min(delay * 2, 4000);
    }
  }
  if (live !== me) return;
  live = null;
  clearTimeout(saveTimer);
  saveTimer = null;
  sessionStorage.removeItem(PENDING);
  busy(false);
  const ended = turn.state.status;
  if (turn.done && ended !== "not-sent") status("");
  if (pending.fresh && pending.run && ended !== "failed" && ended !== "not-sent") {
    await nameSession(pending.session, pending.user);
  }
  await refreshSessions();
}

// A new chat is titled by its first message, as `chat-shell chat` titles its sessions.
async function nameSession(id, text) {
  const line = text.split("\n").map((part) => part.trim()).find(Boolean) ?? "";
  const title = line.length <= 60 ? line : `${line.slice(0, 59)}…`;
  try {
    await api.call("PATCH", `/api/v1/sessions/${encodeURIComponent(id)}`, { title });
  } catch {
    // a title is a nicety: the session keeps its id as its name
  }
}

function send(text) {
  if (live || !text.trim()) return;
  const pending = { run: null, session, seq: -1, user: text, fresh: !session, turn: {} };
  const body = { messages: [{ role: "user", content: text }] };
  if (session) body.session_id = session;
  const model = pickedModel();
  if (model) body.model = model;
  ui.messages.append(userMessage(text));
  const turn = new Turn(ui.messages);
  scrollDown(true);
  ui.input.value = "";
  follow(pending, turn, body);
}

async function stop() {
  const run = live?.pending.run;
  if (!run) return;
  ui.stop.disabled = true;
  try {
    await withKey(() => api.call("DELETE", `/v1/response/${encodeURIComponent(run)}`));
  } catch (error) {
    if (error.code !== "run_finished") status(error.message, "error");
  }
}

// After a reload: the session's history up to the run, the answer so far, then the run's
// events after the last one shown.
async function resume(pending) {
  showSession(pending.session);
  let messages = [];
  try {
    const path = `/v1/sessions/${encodeURIComponent(pending.session)}/history`;
    messages = (await withKey(() => api.call("GET", path))).messages;
  } catch (error) {
    status(`History: ${error.message}`, "error");
  }
  // The run is the session's latest turn: what is stored of it so far is shown from its events.
  const last = messages.findLastIndex((m) => m.role === "user");
  if (last >= 0 && messages[last].content === pending.user) messages = messages.slice(0, last);
  renderHistory(ui.messages, messages);
  ui.messages.append(userMessage(pending.user));
  const turn = new Turn(ui.messages, pending.turn);
  scrollDown(true);
  await follow(pending, turn);
}

function readPending() {
  try {
    const pending = JSON.parse(sessionStorage.getItem(PENDING));
    return pending?.run && pending.session ? pending : null;
  } catch {
    return null;
  }
}

async function start() {
  ui.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    send(ui.input.value);
  });
  ui.input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send(ui.input.value);
    }
  });
  ui.stop.addEventListener("click", stop);
  ui.newChat.addEventListener("click", newChat);
  ui.model.addEventListener("change", () => {
    ui.modelOther.hidden = ui.model.value !== OTHER;
    pickedModel();
  });
  ui.modelOther.addEventListener("change", pickedModel);
  ui.keyDialog.addEventListener("cancel", (event) => event.preventDefault()); // nothing works without
  ui.forgetKey.addEventListener("click", () => {
    api.key = null;
    location.reload();
  });
  addEventListener("pagehide", () => {
    if (live) save(live.pending);
  });

  try {
    fillModels(await withKey(() => api.call("GET", "/v1/config")));
  } catch (error) {
    status(`The server did not answer: ${error.message}`, "error");
    return;
  }
  ui.forgetKey.hidden = !api.key;
  document.body.dataset.ready = "true";
  const pending = readPending();
  await refreshSessions();
  if (pending) await resume(pending);
  else if (session) await openSession(session);
  else showSession(null);
}

start();
