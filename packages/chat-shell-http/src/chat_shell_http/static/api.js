// The chat-shell HTTP API (docs/http.md) as the page uses it: JSON calls, and run event
// streams read with fetch (EventSource cannot send an Authorization header).
import { createParser } from "./vendor/eventsource-parser.js";

const KEY = "chat-shell.api-key";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function errorOf(response) {
  let code = "http_error";
  let message = `the server answered ${response.status}`;
  try {
    const body = await response.json();
    code = body.error.code;
    message = body.error.message;
  } catch {
    // not the server's error shape (a proxy's page): keep the status
  }
  return new ApiError(response.status, code, message);
}

export class Api {
  // The key lives in this tab's session storage only: it goes in a header, never in a URL.
  get key() {
    return sessionStorage.getItem(KEY);
  }

  set key(value) {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  }

  headers(extra) {
    const headers = { ...extra };
    const key = this.key;
    if (key) headers.Authorization = `Bearer ${key}`;
    return headers;
  }

  async call(method, path, body) {
    const init = { method, cache: "no-store", headers: this.headers({}) };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    if (!response.ok) throw await errorOf(response);
    return response.status === 204 ? null : response.json();
  }

  // Opens a run's event stream: POST /v1/response with `body`, or GET /v1/response/{run}
  // after the event `after`. Calls onOpen(runId, sessionId) once the answer's headers are in,
  // then onEvent(event) for each event; resolves when the stream ends, rejects on an error
  // answer (ApiError) or a broken connection (TypeError).
  async stream({ run, body, after, signal, onOpen, onEvent }) {
    const headers = this.headers({ Accept: "text/event-stream" });
    const init = { cache: "no-store", signal, headers };
    let path = "/v1/response";
    if (run === undefined) {
      init.method = "POST";
      init.body = JSON.stringify(body);
      headers["Content-Type"] = "application/json";
    } else {
      init.method = "GET";
      path += `/${encodeURIComponent(run)}`;
      headers["Last-Event-ID"] = String(after);
    }
    const response = await fetch(path, init);
    if (!response.ok) throw await errorOf(response);
    onOpen(response.headers.get("X-Subtask-Id"), response.headers.get("X-Session-Id"));
    const parser = createParser({ onEvent: (message) => onEvent(JSON.parse(message.data)) });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      parser.feed(value);
    }
  }
}
