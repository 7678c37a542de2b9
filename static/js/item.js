// The item page: the image shown blurred; the original only while Space (or the Reveal
// button) is held, each fetch of it a recorded, budgeted reveal whose duration is sent on
// release, as on the labeling page. Corrections go to the API with a client key that a
// retry reuses, then the page reloads to show the new history and final label.
(function () {
  "use strict";
  const root = document.getElementById("item");
  if (!root) return;
  const config = JSON.parse(document.getElementById("item-config").textContent);
  const csrf = root.querySelector("[name=csrfmiddlewaretoken]").value;
  const byId = (id) => document.getElementById(id);
  const stage = byId("stage");
  const badge = byId("mode-badge");
  const original = byId("view-original");
  const sketch = byId("view-sketch");
  const revealButton = byId("reveal");
  const sketchButton = byId("sketch");
  const BADGES = { blurred: "Blurred", sketch: "Sketch", original: "Original · release to hide" };
  const state = { reveal: null, wanted: false };

  function warn(text) {
    const alert = byId("alert");
    alert.textContent = text || "";
    alert.hidden = !text;
  }

  function say(text) {
    byId("status").textContent = text;
  }

  function setMode(mode) {
    stage.dataset.mode = mode;
    badge.textContent = BADGES[mode] || "";
    if (revealButton) revealButton.setAttribute("aria-pressed", String(mode === "original"));
    if (sketchButton) sketchButton.setAttribute("aria-pressed", String(mode === "sketch"));
  }

  async function post(url, body, options = {}) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      keepalive: Boolean(options.keepalive),
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify(body),
    });
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    return { status: response.status, ok: response.ok, data };
  }

  function newKey() {
    return window.crypto && crypto.randomUUID ? crypto.randomUUID()
      : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  }

  // ---- reveal and sketch -----------------------------------------------------------

  async function startReveal() {
    if (!revealButton || state.reveal || state.wanted) return;
    state.wanted = true;
    let response;
    try {
      response = await fetch(config.urls.original, { credentials: "same-origin", cache: "no-store" });
    } catch (error) {
      state.wanted = false;
      return warn("The original could not be loaded; check the connection and try again.");
    }
    if (!response.ok) {
      state.wanted = false;
      const body = await response.json().catch(() => ({}));
      return warn(body.message || `The original could not be loaded (${response.status}).`);
    }
    const reveal = { id: response.headers.get("X-Veil-Reveal"), started: performance.now() };
    reveal.url = URL.createObjectURL(await response.blob());
    if (!state.wanted) {
      URL.revokeObjectURL(reveal.url);
      return finishReveal(reveal, 0);
    }
    state.reveal = reveal;
    warn("");
    original.src = reveal.url;
    await original.decode().catch(() => {});
    if (state.reveal === reveal) setMode("original");
  }

  function endReveal() {
    state.wanted = false;
    const reveal = state.reveal;
    if (!reveal) return;
    state.reveal = null;
    original.removeAttribute("src");
    URL.revokeObjectURL(reveal.url);
    setMode("blurred");
    finishReveal(reveal, performance.now() - reveal.started);
  }

  function finishReveal(reveal, ms) {
    if (!reveal.id) return;
    post(config.urls.reveal_finish.replace("{id}", reveal.id), { duration_ms: Math.round(ms) }, { keepalive: true })
      .catch(() => {});
  }

  function toggleSketch() {
    if (state.reveal) return;
    if (stage.dataset.mode === "sketch") return setMode("blurred");
    if (!sketch.getAttribute("src")) sketch.src = config.urls.sketch;
    setMode("sketch");
  }

  function typing(target) {
    return target instanceof HTMLElement &&
      (target.isContentEditable || ["INPUT", "SELECT", "TEXTAREA", "BUTTON"].includes(target.tagName));
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    if (event.key === " ") {
      event.preventDefault();
      if (!event.repeat) startReveal();
    } else if (event.key.toLowerCase() === "k" && !event.repeat) {
      toggleSketch();
    }
  });
  document.addEventListener("keyup", (event) => {
    if (event.key === " ") endReveal();
  });
  window.addEventListener("blur", endReveal);
  document.addEventListener("visibilitychange", () => { if (document.hidden) endReveal(); });
  if (revealButton) {
    revealButton.addEventListener("pointerdown", (event) => {
      event.preventDefault();
      revealButton.setPointerCapture(event.pointerId);
      startReveal();
    });
    for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
      revealButton.addEventListener(type, endReveal);
    }
    revealButton.addEventListener("click", (event) => {
      if (event.detail !== 0) return;
      if (state.reveal) endReveal(); else startReveal();
    });
  }
  if (sketchButton) sketchButton.addEventListener("click", toggleSketch);

  // ---- corrections -----------------------------------------------------------------

  root.querySelectorAll("form.correct").forEach((form) => {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const category = form.elements.category.value;
      // A retry of the same correction keeps its key, so it is recorded at most once.
      if (form.dataset.category !== category) {
        form.dataset.category = category;
        form.dataset.key = newKey();
      }
      const button = form.querySelector("button");
      button.disabled = true;
      warn("");
      try {
        const url = config.urls.correct.replace("{id}", form.dataset.annotationId);
        const result = await post(url, { category, client_key: form.dataset.key });
        if (!result.ok) {
          button.disabled = false;
          return warn((result.data && result.data.message) || `The server answered ${result.status}.`);
        }
        say(`Corrected to “${category}”.`);
        window.location.reload();
      } catch (error) {
        button.disabled = false;
        warn("The correction could not be sent. Press Correct again to retry.");
      }
    });
  });
})();
