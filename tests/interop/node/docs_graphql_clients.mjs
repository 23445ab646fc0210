// The client code of docs/graphql.md, as printed, under Node: for tests/test_docs_graphql.py.
//
//   node docs_graphql_clients.mjs <directory>   with one JSON line on stdin
//
// <directory> holds the page's auth.js, graphql-ws-client.js, apollo.js and urql.js (the
// test writes them from the page, with a package.json of "type": "module" and this folder's
// node_modules). Stdin: {"origin": "http://127.0.0.1:<port>", "tokens": {"access": ...}}.
//
// Node is not a browser: the page's modules get what a page has (`location`, a global
// `WebSocket`, a `fetch` that resolves "/graphql/" against the page's address) and the
// functions the page leaves to "your page" (showLogin, showAccountDisabled). Nothing else is
// changed. Then, as a page would: loggedIn(tokens) (auth.js); graphql-ws-client.js, which
// subscribes to `clock` when imported and prints with console.log; Apollo's client (apollo.js)
// and urql's (urql.js), each subscribing to `clock` and querying `{ me }`.
//
// Every line on stdout is a JSON event {source, what, ...}:
//   graphql-ws  console.log      args: what the page's graphql-ws-client.js printed
//   page        showLogin / showAccountDisabled
//   apollo      subscription / query   result (Apollo's, error as {name, message}) or error
//   urql        subscription / query   data, or error (urql's CombinedError, as its message)
// The process exits once each client has answered both operations and the page's own
// subscription has printed, or after deadlineMs (event "deadline").
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { gql } from "@apollo/client";
import WebSocket from "ws";

const directory = process.argv[2];
const { origin, tokens, deadlineMs = 10000 } = JSON.parse(readFileSync(0, "utf8"));

const emit = (source, what, fields = {}) =>
  process.stdout.write(`${JSON.stringify({ source, what, ...fields })}\n`);
const errorFields = (error) => ({
  name: error?.name ?? null,
  message: error?.message ?? String(error),
  isError: error instanceof Error,
});

// What a browser page has and Node does not.
globalThis.location = new URL("/", origin);
globalThis.WebSocket ??= WebSocket; // Node 22 has one
const nodeFetch = globalThis.fetch;
globalThis.fetch = (input, init) =>
  nodeFetch(typeof input === "string" ? new URL(input, location.href) : input, init);
globalThis.showLogin = () => emit("page", "showLogin");
globalThis.showAccountDisabled = () => emit("page", "showAccountDisabled");

const pending = new Set([
  "graphql-ws console.log",
  "apollo subscription",
  "apollo query",
  "urql subscription",
  "urql query",
]);
function done(key) {
  pending.delete(key);
  if (pending.size === 0) process.exit(0);
}
setTimeout(() => {
  emit("runner", "deadline", { pending: [...pending] });
  process.exit(0);
}, deadlineMs);

const page = (name) => import(pathToFileURL(join(directory, name)).href);

const auth = await page("auth.js");
auth.loggedIn(tokens);

// Imported, it subscribes: what it prints is its subscription's events.
console.log = (...args) => {
  emit("graphql-ws", "console.log", { args });
  done("graphql-ws console.log");
};
await page("graphql-ws-client.js");

const apollo = (await page("apollo.js")).client;
apollo.subscribe({ query: gql`subscription { clock }` }).subscribe({
  next: (result) => {
    emit("apollo", "subscription", {
      result: { ...result, error: result.error ? errorFields(result.error) : undefined },
    });
    done("apollo subscription");
  },
  error: (error) => {
    emit("apollo", "subscription", { error: errorFields(error) });
    done("apollo subscription");
  },
});
apollo.query({ query: gql`{ me }` }).then(
  (result) => {
    emit("apollo", "query", {
      result: { ...result, error: result.error ? errorFields(result.error) : undefined },
    });
    done("apollo query");
  },
  (error) => {
    emit("apollo", "query", { error: errorFields(error) });
    done("apollo query");
  },
);

const urql = (await page("urql.js")).client;
const urqlSubscription = urql.subscription("subscription { clock }", {}).subscribe((result) => {
  emit("urql", "subscription", { data: result.data ?? null, error: result.error?.message });
  urqlSubscription.unsubscribe();
  done("urql subscription");
});
urql
  .query("{ me }", {})
  .toPromise()
  .then((result) => {
    emit("urql", "query", { data: result.data ?? null, error: result.error?.message });
    done("urql query");
  });
