// One graphql-ws client (the npm package, with `ws` as its WebSocket) running one subscription,
// for tests/e2e/test_graphql_ws.py. Every line on stdout is a JSON event; stdin is JSON too.
//
// The first line on stdin is the scenario:
//   url            the ws:// URL of the GraphQL endpoint
//   params         connectionParams of successive connections (the last one is repeated);
//                  connectionParams is a function, so graphql-ws calls it on every (re)connection
//   paramsDelayMs  how long connectionParams takes to resolve (default 0)
//   shouldRetry    "default" (graphql-ws' own: any close event) or "recommended" (never after
//                  4403 user rejected or 4441 token revoked)
//   retryAttempts, retryWaitMs   graphql-ws' retryAttempts, and a fixed retryWait
//   query, variables              the subscription
//   deadlineMs     the process gives up after this long (event "deadline"), whatever happens
// A later line {"do": "dispose"} disposes of the client; the process exits after "disposed".
//
// Events: connecting (retrying), params (call), opened, connected (payload), closed (code,
// reason), next (payload), error (code and reason of a close event, or message), complete.
// Each has t, the wall clock in milliseconds. The process exits after error, complete, disposed
// or deadline: the subscription has ended.
import { createInterface } from "node:readline";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

function emit(event, fields = {}) {
  process.stdout.write(`${JSON.stringify({ event, t: Date.now(), ...fields })}\n`);
}

function finish(event, fields) {
  emit(event, fields);
  process.exit(0);
}

const SHOULD_RETRY = {
  default: undefined,
  recommended: (closeEvent) => ![4403, 4441].includes(closeEvent?.code),
};

function start(spec) {
  let calls = 0;
  const client = createClient({
    url: spec.url,
    webSocketImpl: WebSocket,
    connectionParams: async () => {
      const call = calls++;
      emit("params", { call });
      if (spec.paramsDelayMs) {
        await new Promise((resolve) => setTimeout(resolve, spec.paramsDelayMs));
      }
      return spec.params[Math.min(call, spec.params.length - 1)];
    },
    shouldRetry: SHOULD_RETRY[spec.shouldRetry ?? "default"],
    retryAttempts: spec.retryAttempts ?? 5,
    retryWait: () => new Promise((resolve) => setTimeout(resolve, spec.retryWaitMs ?? 100)),
    on: {
      connecting: (retrying) => emit("connecting", { retrying }),
      opened: () => emit("opened"),
      connected: (_socket, payload) => emit("connected", { payload }),
      closed: (event) => emit("closed", { code: event.code, reason: event.reason }),
    },
  });
  client.subscribe(
    { query: spec.query, variables: spec.variables ?? {} },
    {
      next: (payload) => emit("next", { payload }),
      error: (error) =>
        finish("error", {
          code: error?.code ?? null,
          reason: error?.reason ?? null,
          message: error instanceof Error ? error.message : null,
        }),
      complete: () => finish("complete"),
    },
  );
  setTimeout(() => finish("deadline"), spec.deadlineMs ?? 20000);
  return client;
}

let client;
for await (const line of createInterface({ input: process.stdin })) {
  const message = JSON.parse(line);
  if (client === undefined) {
    client = start(message);
  } else if (message.do === "dispose") {
    await client.dispose();
    finish("disposed");
  }
}
