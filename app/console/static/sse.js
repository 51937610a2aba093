// Server-Sent Events over fetch(): unlike EventSource, it can send headers (the API key in
// `Authorization`), so no key ever goes into a URL. It parses the text/event-stream format,
// remembers the last event id, and reconnects with `Last-Event-ID` after a dropped connection,
// so no event is lost or repeated. A stream the server ends on purpose (a job's stream closes
// after its final status) is not reopened unless `reconnect` says so.

const RETRY_MS = 1000;
const MAX_RETRY_MS = 15000;

/** Parse one event block (lines without the blank separator) into {event, data, id}. */
function parseBlock(lines) {
  let event = "message";
  let id = null;
  const data = [];
  for (const line of lines) {
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
    else if (field === "id" && !value.includes("\0")) id = value;
  }
  return data.length ? { event, data: data.join("\n"), id } : id !== null ? { event: null, data: "", id } : null;
}

/**
 * Open `url` as an event stream.
 * options: headers (object or function returning one), onEvent({event, data, id}), onOpen(),
 * onError(error, response) -> return false to stop, reconnect() -> whether to reopen after the server closed.
 * Returns {close()}.
 */
export function openStream(url, options = {}) {
  const controller = new AbortController();
  let lastEventId = options.lastEventId ?? null;
  let delay = RETRY_MS;
  let closed = false;

  async function connect() {
    const headers = { Accept: "text/event-stream", ...(typeof options.headers === "function" ? options.headers() : options.headers) };
    if (lastEventId !== null) headers["Last-Event-ID"] = lastEventId;
    const response = await fetch(url, { headers, signal: controller.signal, cache: "no-store", credentials: "omit" });
    const type = response.headers.get("content-type") || "";
    if (!response.ok || !response.body || !type.startsWith("text/event-stream")) {
      const error = new Error(`event stream answered ${response.status} ${type}`);
      error.status = response.status;
      error.response = response;
      throw error;
    }
    delay = RETRY_MS;
    options.onOpen?.();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      const blocks = buffer.split(/\r\n\r\n|\n\n|\r\r/);
      buffer = blocks.pop();
      for (const block of blocks) {
        const parsed = parseBlock(block.split(/\r\n|\n|\r/));
        if (parsed === null) continue;
        if (parsed.id !== null) lastEventId = parsed.id;
        if (parsed.event !== null) options.onEvent?.(parsed);
      }
    }
  }

  async function run() {
    while (!closed) {
      try {
        await connect();
        if (closed || !(options.reconnect?.() ?? false)) return;
      } catch (error) {
        if (closed || error.name === "AbortError") return;
        if (options.onError?.(error) === false) return;
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, MAX_RETRY_MS);
    }
  }

  run();
  return {
    close() {
      closed = true;
      controller.abort();
    },
    get lastEventId() {
      return lastEventId;
    },
  };
}
