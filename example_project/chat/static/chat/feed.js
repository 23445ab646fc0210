// The GraphQL feed page: a room's messages through a graphql-ws subscription.
//
// graphql-ws (the client Apollo's GraphQLWsLink, urql and Relay use) sends the token in
// connection_init's payload, {"Authorization": "Bearer <token>"}; channels-jwt reads it there
// (MESSAGE_FORMAT "graphql-ws" on /graphql/) before Strawberry runs. No token in any URL.
//
// - connectionParams is a function, so every (re)connection asks for a token that is still
//   valid: after a 4440 (expired) the retry carries a fresh one.
// - shouldRetry stops on 4403 (account disabled), 4441 (revoked, or logged out) and on a
//   connectionParams that found no session (LoggedOut, which graphql-ws would retry): graphql-ws
//   retries those by default, and a revoked client should not come back. 4400, 4401 and 4429
//   it never retries; everything else (4440, 4408, 4503, a lost connection) backs off and
//   retries, and graphql-ws subscribes again on the new socket.
//
// For tests and the curious: <body data-state="..."> (logged-out, connecting, subscribed,
// reconnecting, revoked, failed), window.closeCodes, window.acks (connection_ack payloads),
// window.feedEvents (each step, with the time in milliseconds since the epoch).
"use strict";

(() => {
  const { post } = window.chatApi;
  const PARAMS = new URLSearchParams(location.search);
  const ROOM = /^[A-Za-z0-9_-]{1,50}$/.test(PARAMS.get("room") || "") ? PARAMS.get("room") : "lobby";
  const NO_RETRY = new Set([4403, 4441]);
  const SUBSCRIPTION = `subscription Feed($room: String!) {
    roomMessages(room: $room) { id username text sentAt }
  }`;
  const POST_MESSAGE = `mutation Post($room: String!, $text: String!, $clientId: String!) {
    postMessage(room: $room, text: $text, clientId: $clientId) { id }
  }`;

  const $ = (id) => document.getElementById(id);
  const token = { value: null, expiresAt: 0 };
  window.closeCodes = [];
  window.acks = [];
  window.feedEvents = [];

  function record(type, details = {}) {
    window.feedEvents.push({ type, at: Date.now(), ...details });
  }

  function setState(state, text) {
    document.body.dataset.state = state;
    $("status").dataset.state = state;
    $("status-text").textContent = text;
  }

  function logLine(text) {
    const item = document.createElement("li");
    item.textContent = `${new Date().toLocaleTimeString()} ${text}`;
    $("close-log").prepend(item);
  }

  class LoggedOut extends Error {}

  // The session's token while it has more than 2 s left; a new one from the session otherwise.
  async function validToken() {
    if (token.value && Date.now() < token.expiresAt - 2000) return token.value;
    const result = await post("/api/session");
    if (!result.ok || !result.data.authenticated) throw new LoggedOut("no session");
    token.value = result.data.access;
    token.expiresAt = Date.now() + result.data.expires_in * 1000;
    record("token", { expires_in: result.data.expires_in });
    return token.value;
  }

  function backoff(retries) {
    const ceiling = Math.min(30000, 500 * 2 ** retries);
    return new Promise((resolve) => setTimeout(resolve, ceiling * (0.5 + Math.random() / 2)));
  }

  const client = graphqlWs.createClient({
    url: `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/graphql/`,
    connectionParams: async () => ({ Authorization: `Bearer ${await validToken()}`, page: "feed" }),
    retryAttempts: 10,
    retryWait: backoff,
    // A thrown LoggedOut (from connectionParams) reaches shouldRetry too: never retried.
    shouldRetry: (event) => !(event instanceof LoggedOut) && !NO_RETRY.has(event && event.code),
    on: {
      connecting: () => record("connecting"),
      connected: (_socket, payload) => {
        window.acks.push(payload);
        record("connected", { payload });
        logLine(`Connected as ${payload.username}; token valid until ${payload.expiresAt}.`);
        setState("subscribed", `Subscribed to #${ROOM} as ${payload.username}.`);
      },
      closed: (event) => {
        window.closeCodes.push(event.code);
        record("closed", { code: event.code, reason: event.reason });
        logLine(`Closed ${event.code} ${event.reason || ""}`);
        if (!NO_RETRY.has(event.code)) setState("reconnecting", `Closed (${event.code}): reconnecting…`);
      },
    },
  });

  function showMessage(message) {
    const item = document.createElement("li");
    item.dataset.id = message.id;
    const who = document.createElement("strong");
    who.textContent = message.username;
    item.append(who, `: ${message.text}`);
    $("feed").append(item);
  }

  function stopped(error) {
    const code = error && error.code;
    record("stopped", { code: code || null, error: String(error && (error.message || error)) });
    // A connectionParams that throws (no session left) closes the socket with 4005 and its message.
    const noSession = error instanceof LoggedOut || (code === 4005 && error.reason === "no session");
    if (noSession || code === 4401 || code === 4441) {
      $("feed-view").hidden = true;
      $("login-view").hidden = false;
      setState(code === 4441 ? "revoked" : "logged-out", "Not logged in.");
    } else {
      setState("failed", `The subscription stopped (${code || error}).`);
    }
  }

  function subscribe() {
    setState("connecting", `Connecting to #${ROOM}…`);
    client.subscribe(
      { query: SUBSCRIPTION, variables: { room: ROOM } },
      {
        next: ({ data, errors }) => {
          if (data) showMessage(data.roomMessages);
          if (errors) record("graphql-errors", { errors });
        },
        error: stopped,
        complete: () => record("complete"),
      },
    );
  }

  async function postMessage(event) {
    event.preventDefault();
    const text = $("post-input").value.trim();
    if (!text) return;
    const response = await fetch("/graphql/", {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        Authorization: `Bearer ${await validToken()}`,
      },
      body: JSON.stringify({
        query: POST_MESSAGE,
        variables: { room: ROOM, text, clientId: crypto.randomUUID() },
      }),
    });
    const result = await response.json();
    record("posted", { status: response.status, errors: result.errors || null });
    if (response.ok && !result.errors) $("post-input").value = "";
  }

  async function start() {
    $("feed-title").textContent = `#${ROOM}`;
    try {
      await validToken();
    } catch (error) {
      stopped(error);
      return;
    }
    $("feed-view").hidden = false;
    $("post-form").addEventListener("submit", postMessage);
    subscribe();
  }

  start();
})();
