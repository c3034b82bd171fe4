// The admin playground: it calls the proxy's public API exactly as a client would,
// with a short-lived key the server creates for this page (held in memory only).
"use strict";
(() => {
  const form = document.getElementById("playground-form");
  if (!form) {
    return;
  }
  const $ = (id) => document.getElementById(id);
  const csrf = form.querySelector("[name=csrfmiddlewaretoken]").value;
  const keys = new Map(); // organization slug -> key

  function status(text, isError = false) {
    $("playground-status").textContent = text;
    $("playground-status").classList.toggle("error", isError);
  }

  async function keyFor(organization) {
    if (!keys.has(organization)) {
      const response = await fetch(form.dataset.keyUrl, {
        method: "POST",
        headers: { "X-CSRFToken": csrf },
        body: new URLSearchParams({ organization }),
        credentials: "same-origin",
      });
      const data = await response.json();
      if (!response.ok) {
        throw new Error(data.error || `could not create a playground key (${response.status})`);
      }
      keys.set(organization, data.key);
    }
    return keys.get(organization);
  }

  async function api(path, options) {
    const key = await keyFor($("playground-organization").value);
    const response = await fetch(path, {
      ...options,
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json", ...(options.headers || {}) },
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new Error((data.error && data.error.message) || `HTTP ${response.status}`);
    }
    return { response, data };
  }

  async function loadModels() {
    const select = $("playground-model");
    select.disabled = true;
    try {
      const { data } = await api("/v1/models", { method: "GET" });
      select.replaceChildren(
        ...data.data.map((model) => new Option(model.id, model.id)),
      );
      select.disabled = false;
      status("");
    } catch (error) {
      status(`Models: ${error.message}`, true);
    }
  }

  function messages() {
    const list = [];
    if ($("playground-system").value.trim()) {
      list.push({ role: "system", content: $("playground-system").value });
    }
    list.push({ role: "user", content: $("playground-user").value });
    return list;
  }

  function show(id, text) {
    $(id).textContent = text;
  }

  async function send(event) {
    event.preventDefault();
    const model = $("playground-model").value;
    const sent = messages();
    const headers = {};
    if ($("playground-compression").value) {
      headers["x-synthlang-compression"] = $("playground-compression").value;
    }
    if ($("playground-cache").value) {
      headers["x-synthlang-cache"] = $("playground-cache").value;
    }
    $("playground-send").disabled = true;
    status("Sending…");
    try {
      const started = performance.now();
      const { response, data } = await api("/v1/chat/completions", {
        method: "POST",
        headers,
        body: JSON.stringify({ model, messages: sent }),
      });
      const latency = performance.now() - started;
      const header = (name) => response.headers.get(name) || "-";
      const usage = data.usage || {};
      const cached = (usage.prompt_tokens_details || {}).cached_tokens || 0;
      show("playground-answer", data.choices.map((choice) => choice.message.content).join("\n---\n"));
      show("fact-cache", header("x-synthlang-cache"));
      show("fact-tokens-saved", header("x-synthlang-tokens-saved"));
      show("fact-latency", `${latency.toFixed(0)} ms (measured in the browser)`);
      show("fact-overhead", `${header("x-synthlang-overhead-ms")} ms`);
      show("fact-usage", `${usage.prompt_tokens || 0} in, ${usage.completion_tokens || 0} out`);
      show("fact-request-id", header("x-request-id"));
      status("Done.");
      await Promise.all([
        showCost(model, usage, cached, response.headers),
        showCompression(model, sent, response.headers.get("x-synthlang-compression")),
      ]);
    } catch (error) {
      status(error.message, true);
    } finally {
      $("playground-send").disabled = false;
    }
  }

  async function showCost(model, usage, cached, headers) {
    const response = await fetch(form.dataset.costUrl, {
      method: "POST",
      headers: { "X-CSRFToken": csrf, "Content-Type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify({
        model,
        prompt_tokens: usage.prompt_tokens || 0,
        completion_tokens: usage.completion_tokens || 0,
        cached_tokens: cached,
        cache_write_tokens: usage.cache_creation_input_tokens || 0,
        tokens_saved: Number(headers.get("x-synthlang-tokens-saved") || 0),
      }),
    });
    const cost = await response.json();
    const hit = headers.get("x-synthlang-cache") === "hit";
    let text = hit
      ? `$0 (cache hit; upstream would have cost $${cost.cost_usd})`
      : `$${cost.cost_usd}; compression saved $${cost.compression_saved_usd}, ` +
        `the provider's prompt cache $${cost.prompt_cache_saved_usd}`;
    if (cost.price_unknown) {
      text += " (no price for this model: the unknown-model rule)";
    }
    show("fact-cost", text);
  }

  async function showCompression(model, sent, level) {
    const original = sent.map((message) => `[${message.role}] ${message.content}`).join("\n\n");
    show("playground-original", original);
    const { data } = await api("/v1/synthlang/compress", {
      method: "POST",
      body: JSON.stringify({ messages: sent, model, level: level && level !== "off" ? level : "off" }),
    });
    show(
      "playground-compressed",
      data.messages.map((message) => `[${message.role}] ${message.content}`).join("\n\n"),
    );
    show("original-tokens", `${data.tokens_before} tokens`);
    show(
      "compressed-tokens",
      `${data.tokens_after} tokens, ${data.tokens_saved} saved (level ${data.level})`,
    );
  }

  $("playground-organization").addEventListener("change", loadModels);
  form.addEventListener("submit", send);
  loadModels();
})();
