// Showing a conversation. Model output is untrusted: Markdown is rendered by markdown-it with
// raw HTML off (a model's <script> or <img onerror> shows as text), images off (an image would
// fetch a URL of the model's choosing: a way to leak the conversation) and links only to
// http(s) and mailto; DOMPurify then sanitizes the result again, and it is the only HTML the
// page ever assigns (enforced by the page's Trusted Types policy). Everything else — user text,
// tool arguments and results — is set as text.
import markdownit from "./vendor/markdown-it.esm.min.mjs";
import DOMPurify from "./vendor/purify.es.mjs";

const SAFE_LINK = /^(?:https?:|mailto:)/i;

const md = markdownit({ html: false, linkify: false, typographer: false });
md.disable("image");
md.validateLink = (url) => SAFE_LINK.test(url.trim());
md.renderer.rules.link_open = (tokens, index, options, env, self) => {
  tokens[index].attrSet("target", "_blank");
  tokens[index].attrSet("rel", "noopener noreferrer nofollow");
  return self.renderToken(tokens, index, options);
};

const PURIFY = {
  ALLOWED_TAGS: [
    "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "li", "ol", "p", "pre", "s", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
  ],
  ALLOWED_ATTR: ["class", "href", "rel", "start", "target", "title"],
  RETURN_TRUSTED_TYPE: true,
};

const BADGES = { cancelled: "stopped", "not-sent": "not sent" };

export function setMarkdown(element, text) {
  element.innerHTML = DOMPurify.sanitize(md.render(text), PURIFY);
}

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

function pretty(value) {
  if (typeof value === "string") return value;
  return JSON.stringify(value, null, 2);
}

function short(text, limit = 80) {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > limit ? `${line.slice(0, limit - 1)}…` : line;
}

export function userMessage(text) {
  return el("article", { class: "message user" }, el("div", { class: "text" }, text));
}

// One answer of the agent: text, thinking, tool calls with their results, errors, in the order
// they came. `state` ({blocks, status, footer}) is plain data: kept in session storage while a
// run streams, so a reloaded page shows the answer so far and resumes after its last event.
export class Turn {
  constructor(container, state = {}) {
    this.root = el("article", { class: "message assistant" });
    this.body = el("div", { class: "blocks" });
    this.root.append(this.body);
    container.append(this.root);
    this.state = { blocks: [], status: null, footer: null };
    this.nodes = [];
    this.dirty = new Set();
    for (const block of state.blocks ?? []) this.add(structuredClone(block));
    if (state.status) this.finish(state.status, state.footer);
  }

  get done() {
    return this.state.status !== null;
  }

  apply(event) {
    const data = event.data;
    switch (event.event_type) {
      case "content":
        this.append("text", data.delta);
        break;
      case "thinking":
        this.append("thinking", data.delta);
        break;
      case "tool_call":
        this.add({ type: "tool", id: data.id, name: data.name, arguments: data.arguments });
        break;
      case "tool_result":
        this.result(data);
        break;
      case "error":
        this.add({ type: "error", code: data.code, message: data.message });
        break;
      case "complete": {
        const usage = data.usage?.total_tokens;
        const parts = [data.model, usage ? `${usage} tokens` : null, data.reason];
        this.finish(data.status, parts.filter(Boolean).join(" · "));
        break;
      }
      default:
        // approval_required: the page does not ask yet (docs/playground.md)
        break;
    }
  }

  append(type, delta) {
    const last = this.state.blocks.at(-1);
    if (last?.type === type) {
      last.text += delta;
      this.paint(this.state.blocks.length - 1);
    } else {
      this.add({ type, text: delta });
    }
  }

  add(block) {
    const index = this.state.blocks.push(block) - 1;
    const node = this.build(block);
    this.nodes.push(node);
    this.body.append(node);
    this.paint(index);
    return index;
  }

  result(data) {
    let index = this.state.blocks.findIndex((b) => b.type === "tool" && b.id === data.id);
    if (index < 0) index = this.add({ type: "tool", id: data.id, name: data.name });
    const block = this.state.blocks[index];
    if ("error" in data) block.error = data.error;
    else block.result = data.result;
    block.duration_ms = data.duration_ms;
    this.paint(index);
  }

  finish(status, footer) {
    this.state.status = status;
    this.state.footer = footer || null;
    this.flush();
    this.root.dataset.status = status;
    const parts = [];
    if (status !== "completed") parts.push(el("span", { class: `badge ${status}` }, BADGES[status] ?? status));
    if (footer) parts.push(el("span", {}, footer));
    if (parts.length) this.root.append(el("footer", {}, ...parts));
  }

  build(block) {
    switch (block.type) {
      case "thinking":
        // collapsed: reasoning is there to look at, not to read by default
        return el("details", { class: "thinking" }, el("summary", {}, "Thinking"), el("div", { class: "text" }));
      case "tool":
        return el(
          "details",
          { class: "tool" },
          el("summary", {}, el("span", { class: "tool-name" }, ""), el("span", { class: "tool-brief" }, "")),
          el("div", { class: "label" }, "arguments"),
          el("pre", { class: "arguments" }),
          el("div", { class: "label result-label" }, "result"),
          el("pre", { class: "result" }),
        );
      case "error":
        return el("div", { class: "error-block" });
      default:
        return el("div", { class: "markdown" });
    }
  }

  // Markdown is re-rendered at most once a frame while text streams in.
  paint(index) {
    this.dirty.add(index);
    if (this.dirty.size === 1) requestAnimationFrame(() => this.flush());
  }

  flush() {
    for (const index of this.dirty) this.draw(this.state.blocks[index], this.nodes[index]);
    this.dirty.clear();
  }

  draw(block, node) {
    switch (block.type) {
      case "thinking":
        node.querySelector(".text").textContent = block.text;
        break;
      case "tool": {
        const args = block.arguments === undefined ? "" : pretty(block.arguments);
        const done = "result" in block || "error" in block;
        node.querySelector(".tool-name").textContent = block.name ?? "tool";
        node.querySelector(".arguments").textContent = args;
        node.querySelector(".result").textContent = done ? pretty(block.error ?? block.result) : "…";
        node.classList.toggle("failed", "error" in block);
        const took = block.duration_ms === undefined ? "" : ` (${Math.round(block.duration_ms)} ms)`;
        const outcome = done ? ` → ${short(pretty(block.error ?? block.result), 60)}${took}` : " running…";
        node.querySelector(".tool-brief").textContent = `(${short(args, 60)})${outcome}`;
        break;
      }
      case "error":
        node.textContent = `${block.code}: ${block.message}`;
        break;
      default:
        setMarkdown(node, block.text);
    }
  }

  text() {
    return this.state.blocks.filter((b) => b.type === "text").map((b) => b.text).join("");
  }
}

// A stored conversation (GET /v1/sessions/{id}/history) as the page shows a live one.
export function renderHistory(container, messages) {
  let turn = null;
  let status = null;
  const close = () => {
    if (turn) turn.finish(status ?? "completed", null);
    turn = null;
    status = null;
  };
  for (const message of messages) {
    const meta = message.metadata ?? {};
    if (message.role === "user") {
      close();
      container.append(userMessage(message.content ?? ""));
    } else if (message.role === "assistant") {
      turn ??= new Turn(container);
      if (meta.reasoning) turn.add({ type: "thinking", text: meta.reasoning });
      if (message.content) turn.add({ type: "text", text: message.content });
      for (const call of message.tool_calls ?? []) {
        turn.add({ type: "tool", id: call.id, name: call.name, arguments: call.arguments });
      }
      if (meta.status) status = meta.status;
    } else if (message.role === "tool") {
      turn ??= new Turn(container);
      const outcome = meta.is_error ? { error: message.content } : { result: message.content };
      turn.result({ id: message.tool_call_id, name: message.name, duration_ms: meta.duration_ms, ...outcome });
    }
  }
  close();
}
