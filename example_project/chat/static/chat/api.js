// The site's JSON API, shared by the chat page (app.js) and the GraphQL feed page (feed.js).
// POSTs carry the CSRF cookie's token (the session cookie itself is HttpOnly).
"use strict";

window.chatApi = (() => {
  function cookie(name) {
    const entry = document.cookie.split("; ").find((part) => part.startsWith(`${name}=`));
    return entry ? decodeURIComponent(entry.slice(name.length + 1)) : "";
  }

  async function post(path, body = {}) {
    const response = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": cookie("csrftoken") },
      body: JSON.stringify(body),
    });
    let data = {};
    try {
      data = await response.json();
    } catch (_) {
      // not JSON (a proxy's error page): status alone then
    }
    return { ok: response.ok, status: response.status, data };
  }

  return { post };
})();
