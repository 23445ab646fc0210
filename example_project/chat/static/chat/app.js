// The chat page: plain JavaScript, no build step.
//
// Credentials: the session cookie (HttpOnly, set by /api/login) is the long-lived one; the
// access token is short-lived, kept in memory only, and presented when opening the WebSocket:
//   new WebSocket(url, ["access_token", token])      (default)
//   new WebSocket(url + "?token=" + token)             (page opened with ?transport=query)
//   new WebSocket(url), then {"type": "authenticate", "token": token} as the first frame
//                                                      (page opened with ?transport=message)
// When the socket closes, the close code alone says what to do (see CLOSE_CODES below).
//
// The token is renewed in place: at 80% of its life (at least 1 s before it expires) the page
// gets a new one from POST /api/refresh and sends {"type": "token.refresh", "token": ...} on
// the open socket; the server answers {"type": "token.refreshed", "expires_at": <exp>} and
// the socket lives on. If that fails, nothing else is needed: the server closes the socket
// with 4440 when the old token expires, and the page refreshes and reconnects (the fallback).
// Open the page with ?refresh=reconnect to skip in-place renewal and watch the fallback.
//
// For tests and the curious: <body data-state="..."> mirrors the connection state,
// window.closeCodes lists every close code seen, window.refreshes every token.refreshed
// reply, window.chatEvents every step with a time.
"use strict";

(() => {
  const CLOSE_CODES = {
    1000: "the connection was closed",
    1001: "the server is going away",
    1006: "the connection was lost",
    1011: "the server hit an error",
    1012: "the server is restarting",
    4400: "the server says the token is malformed: a bug in this page, so no retry",
    4401: "the server did not accept the token: please log in",
    4403: "this account is disabled: it may no longer chat",
    4408: "the server waited too long for the token: retrying",
    4429: "too many failed attempts: backing off",
    4440: "the access token expired: getting a new one and reconnecting",
    4441: "the token was revoked: please log in again",
    4503: "the server cannot check credentials right now: retrying",
  };
  const MAX_BACKOFF_MS = 30000;
  const ROOM_NAME = /^[A-Za-z0-9_-]{1,50}$/;
  const PARAMS = new URLSearchParams(location.search);
  const TRANSPORTS = ["subprotocol", "query", "message"];
  const TRANSPORT = TRANSPORTS.includes(PARAMS.get("transport"))
    ? PARAMS.get("transport")
    : "subprotocol";
  const RENEW_IN_PLACE = PARAMS.get("refresh") !== "reconnect";

  const $ = (id) => document.getElementById(id);
  const ui = {
    status: $("status"),
    statusText: $("status-text"),
    who: $("who"),
    username: $("username"),
    logout: $("logout"),
    loginView: $("login-view"),
    loginNotice: $("login-notice"),
    loginForm: $("login-form"),
    loginUsername: $("login-username"),
    loginPassword: $("login-password"),
    loginSubmit: $("login-submit"),
    loginError: $("login-error"),
    chatView: $("chat-view"),
    roomList: $("room-list"),
    roomForm: $("room-form"),
    roomInput: $("room-input"),
    roomTitle: $("room-title"),
    transport: $("transport"),
    messages: $("messages"),
    sendForm: $("send-form"),
    messageInput: $("message-input"),
    closePanel: $("close-panel"),
    closeLog: $("close-log"),
  };

  // receivedAt/expiresIn: when this page got the token (its own clock) and its lifetime.
  const session = { token: null, username: null, receivedAt: 0, expiresIn: 0 };
  const socket = {
    ws: null,
    generation: 0, // one per socket: events of a replaced socket are ignored
    attempt: 0,
    timer: null, // reconnection backoff
    renewTimer: null, // in-place renewal of the token
    expiresAt: null, // the server's word on when the socket's token expires (ms), or null
    connected: false,
  };
  let room = roomFromHash() || "lobby";
  const pending = new Map(); // client_id -> {room, text}: sent, not yet confirmed by the server
  const rendered = new Map(); // "username/client_id" -> <li>

  window.closeCodes = [];
  window.refreshes = [];
  window.chatEvents = [];

  function record(type, detail = {}) {
    window.chatEvents.push({ type, at: Date.now(), ...detail });
  }

  function meaning(code) {
    return CLOSE_CODES[code] || "the connection closed";
  }

  function setStatus(state, text, code = null) {
    document.body.dataset.state = state;
    ui.status.dataset.state = state;
    ui.status.dataset.code = code === null ? "" : String(code);
    ui.statusText.textContent = text;
  }

  // --- HTTP API ----------------------------------------------------------------------------

  const { post } = window.chatApi;

  // --- Views -------------------------------------------------------------------------------

  function showLogin(notice = "") {
    ui.loginView.hidden = false;
    ui.chatView.hidden = true;
    ui.who.hidden = true;
    ui.loginNotice.textContent = notice;
    ui.loginNotice.hidden = !notice;
    ui.loginUsername.focus();
  }

  function showChat() {
    ui.loginView.hidden = true;
    ui.chatView.hidden = false;
    ui.who.hidden = false;
    ui.username.textContent = session.username;
    showRoom();
  }

  function showRoom() {
    ui.roomTitle.textContent = `#${room}`;
    for (const button of ui.roomList.querySelectorAll("button[data-room]")) {
      button.classList.toggle("active", button.dataset.room === room);
    }
  }

  function clock(ms) {
    return new Date(ms).toLocaleTimeString();
  }

  function logClose(code, reason) {
    const item = document.createElement("li");
    item.dataset.code = String(code);
    const when = clock(Date.now());
    item.textContent = `${when}  ${code}${reason ? ` (${reason})` : ""}: ${meaning(code)}`;
    appendToCloseLog(item);
  }

  function logRenewal(expiresAt) {
    const item = document.createElement("li");
    item.dataset.renewed = "";
    const until = expiresAt === null ? "" : `, valid until ${clock(expiresAt)}`;
    item.textContent = `${clock(Date.now())}  token renewed in place (same socket${until})`;
    appendToCloseLog(item);
  }

  // The panel stays hidden until it has something to show.
  function appendToCloseLog(item) {
    ui.closeLog.append(item);
    ui.closePanel.hidden = false;
  }

  // --- Signing in and out ------------------------------------------------------------------

  function setToken(data) {
    session.token = data.access;
    session.receivedAt = Date.now();
    session.expiresIn = data.expires_in;
  }

  function signedIn(data) {
    setToken(data);
    session.username = data.username;
    record("token", { expires_in: data.expires_in });
    showChat();
    connect();
  }

  function stopSocket() {
    clearTimeout(socket.timer);
    clearTimeout(socket.renewTimer);
    socket.generation += 1; // events of the old socket are ignored from now on
    socket.connected = false;
    socket.expiresAt = null;
    if (socket.ws) {
      socket.ws.close(1000);
      socket.ws = null;
    }
  }

  function signedOut(state, text, code = null) {
    stopSocket();
    session.token = null;
    pending.clear();
    setStatus(state, text, code);
    showLogin(text);
  }

  async function resumeSession() {
    setStatus("starting", "Checking for an existing session…");
    try {
      // 200 either way ({"authenticated": false} on a first visit): no error in the console.
      const result = await post("/api/session");
      if (result.ok && result.data.authenticated) {
        signedIn(result.data);
        return;
      }
    } catch (_) {
      // the server is unreachable: show the form, logging in will say so
    }
    setStatus("logged-out", "Not logged in.");
    showLogin();
  }

  async function logIn(event) {
    event.preventDefault();
    ui.loginError.hidden = true;
    ui.loginSubmit.disabled = true;
    setStatus("logging-in", "Logging in…");
    try {
      const result = await post("/api/login", {
        username: ui.loginUsername.value,
        password: ui.loginPassword.value,
      });
      if (result.ok) {
        ui.loginPassword.value = "";
        signedIn(result.data);
        return;
      }
      showLoginError(result.data.detail || `Login failed (HTTP ${result.status}).`);
    } catch (_) {
      showLoginError("Cannot reach the server.");
    } finally {
      ui.loginSubmit.disabled = false;
    }
  }

  function showLoginError(text) {
    ui.loginError.textContent = text;
    ui.loginError.hidden = false;
    setStatus("logged-out", `Not logged in: ${text}`);
  }

  async function logOut() {
    try {
      await post("/api/logout");
    } catch (_) {
      // logged out locally all the same
    }
    signedOut("logged-out", "You have logged out.");
  }

  // --- The socket --------------------------------------------------------------------------

  function socketURL() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/ws/chat/${room}/`;
  }

  function connect() {
    stopSocket();
    const generation = socket.generation;
    let ws;
    if (TRANSPORT === "query") {
      ws = new WebSocket(`${socketURL()}?token=${encodeURIComponent(session.token)}`);
    } else if (TRANSPORT === "message") {
      // The server accepts a handshake without a token and waits for this frame (4408 if it
      // does not come in time); the chat consumer only runs once it has authenticated.
      ws = new WebSocket(socketURL());
      const token = session.token;
      ws.onopen = () => ws.send(JSON.stringify({ type: "authenticate", token }));
    } else {
      ws = new WebSocket(socketURL(), ["access_token", session.token]);
    }
    socket.ws = ws;
    record("connecting", { room, transport: TRANSPORT, socket: generation });
    setStatus("connecting", `Connecting to #${room}…`);
    ws.onmessage = (event) => {
      if (generation === socket.generation) onFrame(JSON.parse(event.data));
    };
    ws.onclose = (event) => {
      if (generation === socket.generation) onClose(event.code, event.reason);
    };
  }

  function onFrame(frame) {
    if (frame.type === "history") {
      // Connected for real: a refused handshake opens and closes at once, so "open" is not it.
      socket.connected = true;
      socket.attempt = 0;
      socket.expiresAt = frame.expires_at ? Date.parse(frame.expires_at) : null;
      record("connected", {
        room: frame.room,
        protocol: socket.ws.protocol,
        socket: socket.generation,
        expires_at: socket.expiresAt,
      });
      setStatus("connected", `Connected to #${frame.room} as ${frame.username}.`);
      frame.messages.forEach(showMessage);
      flushPending();
      scheduleRenewal();
    } else if (frame.type === "message") {
      showMessage(frame);
    } else if (frame.type === "token.refreshed") {
      onRenewed(frame);
    } else if (frame.type === "error") {
      record("server-error", { detail: frame.detail });
    }
  }

  // --- Renewing the token in place ---------------------------------------------------------

  // When to renew, in ms from now: at 80% of the token's life and at least 1 s before its end
  // (but not before half of it). `exp` is in whole seconds, so a token may end up to 1 s
  // sooner than expires_in says: its life is counted 1 s shorter. The page's own clock only:
  // the browser's and the server's clocks may disagree.
  function renewDelay() {
    const life = Math.max(0, (session.expiresIn - 1) * 1000);
    const at = Math.max(500, life / 2, Math.min(life * 0.8, life - 1000));
    return Math.max(0, session.receivedAt + at - Date.now());
  }

  function scheduleRenewal() {
    clearTimeout(socket.renewTimer);
    if (!RENEW_IN_PLACE) return;
    const generation = socket.generation;
    socket.renewTimer = setTimeout(() => {
      if (generation === socket.generation && socket.connected) renewInPlace();
    }, renewDelay());
  }

  async function renewInPlace() {
    const generation = socket.generation;
    record("renewing", { socket: generation });
    let result = null;
    try {
      result = await post("/api/refresh");
    } catch (_) {
      // network trouble: the fallback below
    }
    if (generation !== socket.generation || !socket.connected) return; // replaced meanwhile
    if (!result || !result.ok) {
      // The fallback: the server closes this socket with 4440 when its token expires, and
      // onClose refreshes and reconnects (or asks for the password if the session ended).
      record("renew-failed", { socket: generation, status: result ? result.status : null });
      return;
    }
    setToken(result.data); // also the token of the next connection, whatever happens here
    socket.ws.send(JSON.stringify({ type: "token.refresh", token: session.token }));
    // The answer is a token.refreshed frame (onRenewed), or a close with the refusal's code.
  }

  function onRenewed(frame) {
    const previous = socket.expiresAt;
    socket.expiresAt = typeof frame.expires_at === "number" ? frame.expires_at * 1000 : null;
    const renewal = {
      at: Date.now(),
      socket: socket.generation,
      expires_at: socket.expiresAt,
      previous_expires_at: previous,
    };
    window.refreshes.push(renewal);
    record("renewed", renewal);
    logRenewal(socket.expiresAt);
    const until = socket.expiresAt === null ? "" : `, valid until ${clock(socket.expiresAt)}`;
    setStatus(
      "connected",
      `Connected to #${room} as ${session.username}. ` +
        `Token renewed in place at ${clock(renewal.at)} (no reconnect${until}).`,
    );
    scheduleRenewal();
  }

  function onClose(code, reason) {
    clearTimeout(socket.renewTimer);
    socket.ws = null;
    socket.connected = false;
    window.closeCodes.push(code);
    record("closed", { code, reason });
    logClose(code, reason);
    const text = `Disconnected (${code}): ${meaning(code)}.`;
    if (code === 4440) {
      refreshAndReconnect();
    } else if (code === 4401 || code === 4441) {
      signedOut("logged-out", text, code);
    } else if (code === 4403) {
      signedOut("disabled", `Account disabled (4403): ${meaning(code)}. Not reconnecting.`, code);
    } else if (code === 4400) {
      setStatus("failed", text, code);
    } else {
      retryLater(code, connect); // 4503, 4429, a lost connection, a server restart
    }
  }

  async function refreshAndReconnect() {
    setStatus("refreshing", `Token expired (4440): ${meaning(4440)}…`, 4440);
    const generation = socket.generation;
    let result = null;
    try {
      result = await post("/api/refresh");
    } catch (_) {
      // network trouble: retried below
    }
    if (generation !== socket.generation) return; // logged out or switched rooms meanwhile
    if (result && result.ok) {
      setToken(result.data);
      record("refreshed", { expires_in: result.data.expires_in });
      // At once the first time; with backoff if the new token did not even get us connected.
      if (socket.attempt === 0) {
        socket.attempt = 1;
        connect();
      } else {
        retryLater(4440, connect);
      }
    } else if (result && (result.status === 401 || result.status === 403)) {
      signedOut("logged-out", "Your session has ended: please log in again.", 4440);
    } else {
      retryLater(4440, refreshAndReconnect);
    }
  }

  function retryLater(code, action) {
    const base = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** socket.attempt);
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    socket.attempt += 1;
    const generation = socket.generation;
    record("retry", { code, delay });
    setStatus(
      "waiting",
      `Disconnected (${code}): ${meaning(code)}. Retrying in ${Math.ceil(delay / 1000)} s…`,
      code,
    );
    socket.timer = setTimeout(() => {
      if (generation === socket.generation) action();
    }, delay);
  }

  // --- Messages ----------------------------------------------------------------------------

  function newClientId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  }

  function messageItem(username, clientId) {
    const key = `${username}/${clientId}`;
    let item = rendered.get(key);
    if (!item) {
      item = document.createElement("li");
      item.className = "message";
      for (const part of ["author", "text", "time"]) {
        const span = document.createElement("span");
        span.className = part;
        item.append(span);
      }
      rendered.set(key, item);
      ui.messages.append(item);
    }
    return item;
  }

  function fillItem(item, username, text, when) {
    item.dataset.username = username;
    item.classList.toggle("mine", username === session.username);
    item.querySelector(".author").textContent = username;
    item.querySelector(".text").textContent = text;
    item.querySelector(".time").textContent = when;
    ui.messages.scrollTop = ui.messages.scrollHeight;
  }

  function showMessage(message) {
    if (message.room !== room) return;
    const item = messageItem(message.username, message.client_id);
    item.classList.remove("pending");
    item.dataset.id = String(message.id);
    fillItem(item, message.username, message.text, new Date(message.sent_at).toLocaleTimeString());
    if (message.username === session.username) pending.delete(message.client_id);
  }

  function sendMessage(event) {
    event.preventDefault();
    const text = ui.messageInput.value.trim();
    if (!text) return;
    ui.messageInput.value = "";
    const clientId = newClientId();
    pending.set(clientId, { room, text });
    const item = messageItem(session.username, clientId);
    item.classList.add("pending");
    fillItem(item, session.username, text, "sending…");
    if (socket.connected) transmit(clientId, text);
    // otherwise it goes out when the socket is back (flushPending)
  }

  function transmit(clientId, text) {
    socket.ws.send(JSON.stringify({ type: "message", text, client_id: clientId }));
  }

  function flushPending() {
    for (const [clientId, message] of pending) {
      if (message.room === room) transmit(clientId, message.text);
    }
  }

  // --- Rooms -------------------------------------------------------------------------------

  function roomFromHash() {
    const name = decodeURIComponent(location.hash.slice(1));
    return ROOM_NAME.test(name) ? name : null;
  }

  function switchRoom(name) {
    if (!ROOM_NAME.test(name) || (name === room && socket.ws)) return;
    room = name;
    history.replaceState(null, "", `#${room}`);
    ui.messages.replaceChildren();
    rendered.clear();
    for (const [clientId, message] of pending) {
      if (message.room === room) {
        const item = messageItem(session.username, clientId);
        item.classList.add("pending");
        fillItem(item, session.username, message.text, "sending…");
      }
    }
    showRoom();
    connect();
  }

  // --- Wiring ------------------------------------------------------------------------------

  ui.transport.textContent = {
    subprotocol: "the WebSocket subprotocol",
    query: "the query string (?token=)",
    message: "the first message",
  }[TRANSPORT];
  ui.loginForm.addEventListener("submit", logIn);
  ui.logout.addEventListener("click", logOut);
  ui.sendForm.addEventListener("submit", sendMessage);
  ui.roomList.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-room]");
    if (button) switchRoom(button.dataset.room);
  });
  ui.roomForm.addEventListener("submit", (event) => {
    event.preventDefault();
    switchRoom(ui.roomInput.value.trim());
    ui.roomInput.value = "";
  });
  resumeSession();
})();
