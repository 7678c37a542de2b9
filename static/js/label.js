// The labeling page: one leased image at a time, shown blurred. The original is fetched
// only while the moderator holds Space (or the Reveal button); every fetch of it is a
// recorded reveal, and its duration is sent when the key is released.
(function () {
  "use strict";
  const root = document.getElementById("labeling");
  if (!root) return;
  const config = JSON.parse(document.getElementById("label-config").textContent);
  const csrf = root.querySelector("[name=csrfmiddlewaretoken]").value;
  const byId = (id) => document.getElementById(id);
  const stage = byId("stage");
  const views = { blurred: byId("view-blurred"), sketch: byId("view-sketch"), original: byId("view-original") };
  const badge = byId("mode-badge");
  const buttons = {
    reveal: byId("reveal"), sketch: byId("sketch"), greyscale: byId("greyscale"),
    skip: byId("skip"), undo: byId("undo"), flag: byId("flag"), guidelines: byId("guidelines-toggle"),
  };
  const guidelines = byId("guidelines");
  const breakDialog = byId("break");
  const prefsForm = byId("preferences");
  const blurInput = byId("blur-strength");
  const greyInput = byId("greyscale-default");
  const categories = new Map();
  root.querySelectorAll("button[data-category]").forEach((button) => {
    if (button.dataset.hotkey) categories.set(button.dataset.hotkey, button);
    button.addEventListener("click", () => submit("label", button.dataset.category));
  });
  const BADGES = { loading: "Loading…", blurred: "Blurred", sketch: "Sketch", original: "Original · release to hide" };
  const SNOOZE_KEY = `veil-break-snooze:${config.project}`;

  const state = {
    lease: null,       // the item on screen, as the queue API leased it
    mode: "loading",   // blurred | sketch | original | loading | empty
    shownAt: 0,        // when the item appeared, for time_spent_ms
    revealed: false,   // the moderator saw this item's original
    revealWanted: false,
    reveal: null,      // { id, started, url } while the original is on screen
    busy: false,       // a submission or undo is in flight
    retry: null,       // a failed submission, resent with the same client_key
    undoKey: null,     // the client_key of an undo whose outcome is not known yet
    progress: null,
  };

  // ---- talking to the server -------------------------------------------------------

  async function post(url, body, options = {}) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      keepalive: Boolean(options.keepalive),
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    if (response.status !== 204) data = await response.json().catch(() => null);
    return { status: response.status, ok: response.ok, data };
  }

  // Retries network failures and server errors a few times with the same body, so a
  // submission keeps its client_key and is recorded at most once.
  async function postWithRetry(url, body) {
    for (let attempt = 0; ; attempt += 1) {
      try {
        const result = await post(url, body);
        if (result.status < 500 || attempt >= 2) return result;
      } catch (error) {
        if (attempt >= 2) throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, 500 * 2 ** attempt));
    }
  }

  function newKey() {
    return window.crypto && crypto.randomUUID ? crypto.randomUUID()
      : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  }

  // ---- what is on screen -----------------------------------------------------------

  function say(text) {
    byId("status").textContent = text;
  }

  function warn(text) {
    const alert = byId("alert");
    alert.textContent = text || "";
    alert.hidden = !text;
  }

  function setMode(mode) {
    state.mode = mode;
    stage.dataset.mode = mode;
    badge.textContent = BADGES[mode] || "";
    buttons.reveal.setAttribute("aria-pressed", String(mode === "original"));
    buttons.sketch.setAttribute("aria-pressed", String(mode === "sketch"));
  }

  function setGreyscale(on) {
    stage.classList.toggle("greyscale", on);
    buttons.greyscale.setAttribute("aria-pressed", String(on));
    greyInput.checked = on;
  }

  function setBlur(px) {
    stage.style.setProperty("--veil-blur", `${px}px`);
    byId("blur-value").textContent = String(px);
  }

  // The stage takes the image's aspect ratio, fitted into the space beside the panel.
  function sizeStage() {
    if (!state.lease || !state.lease.width || !state.lease.height) return;
    const { width, height } = state.lease;
    const available = stage.parentElement.clientWidth;
    const maxHeight = Math.max(240, window.innerHeight * (window.innerWidth < 860 ? 0.5 : 0.64));
    const scale = Math.min(available / width, maxHeight / height, 2);
    stage.style.width = `${Math.floor(width * scale)}px`;
    stage.style.height = `${Math.floor(height * scale)}px`;
  }

  function render(progress, wellbeing) {
    if (progress) {
      state.progress = progress;
      for (const [key, value] of Object.entries(progress)) {
        const el = root.querySelector(`[data-progress="${key}"]`);
        if (el) el.textContent = value === null ? "–" : String(value);
      }
    }
    if (wellbeing) {
      root.querySelector('[data-wellbeing="used"]').textContent = String(wellbeing.used);
      root.querySelector('[data-wellbeing="budget"]').textContent =
        wellbeing.budget === null ? "no limit" : String(wellbeing.budget);
    }
  }

  async function show(lease) {
    // Decode the blurred preview before swapping, so the box never shows a half image.
    const preview = new Image();
    preview.src = lease.blurred_url;
    await preview.decode().catch(() => {});
    endReveal();
    state.lease = lease;
    state.revealed = false;
    state.shownAt = performance.now();
    warn("");
    stage.hidden = false;
    byId("empty").hidden = true;
    stage.dataset.itemId = String(lease.item_id);
    stage.dataset.imageId = String(lease.image_id);
    views.blurred.src = lease.blurred_url;
    views.blurred.alt = `Image ${lease.image_id}, blurred`;
    views.sketch.removeAttribute("src");
    views.sketch.alt = `Image ${lease.image_id}, edge sketch`;
    views.original.alt = `Image ${lease.image_id}, original`;
    buttons.flag.setAttribute("aria-pressed", "false");
    byId("image-text-value").textContent = lease.text || "";
    byId("image-text").hidden = !lease.text;
    setMode("blurred");
    sizeStage();
    render(lease.progress, lease.wellbeing);
    if (lease.wellbeing) maybeBreak(lease.wellbeing);
    if (lease.next_blurred_url) new Image().src = lease.next_blurred_url;
  }

  function showEmpty() {
    endReveal();
    state.lease = null;
    byId("image-text").hidden = true;
    setMode("empty");
    stage.hidden = true;
    byId("empty").hidden = false;
    say("Nothing left for you to label right now. This page checks for new items by itself.");
    refreshStatus();
    waitForItems();
  }

  async function loadNext() {
    const result = await post(config.urls.next);
    if (result.status === 204) return showEmpty();
    if (!result.ok) return failed(result);
    await show(result.data);
  }

  // The counters: with every lease, and from the status endpoint after an answer that
  // leaves nothing on screen and every STATUS_EVERY_MS while the page is visible, so
  // everyone's progress on the round shows without a reload.
  const STATUS_EVERY_MS = 15000;

  async function refreshStatus() {
    try {
      const response = await fetch(config.urls.status, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const data = await response.json();
      render(data.progress, data.wellbeing);
    } catch (error) {
      // The next poll or lease brings the counts.
    }
  }

  setInterval(() => { if (!document.hidden && state.mode !== "empty") refreshStatus(); }, STATUS_EVERY_MS);

  // While "Nothing left to label" shows, ask the queue again with back-off (from
  // WAIT_FIRST_MS, doubling to WAIT_MAX_MS), and show the next item when one arrives:
  // a new round, or an item another moderator's lease gave back.
  const WAIT_FIRST_MS = 5000;
  const WAIT_MAX_MS = 60000;
  let waiting = null;

  function waitForItems(delay = WAIT_FIRST_MS) {
    if (waiting) return;
    waiting = setTimeout(async () => {
      waiting = null;
      if (state.mode !== "empty") return;
      if (state.busy || document.hidden) return waitForItems(delay);
      let result;
      try {
        result = await post(config.urls.next);
      } catch (error) {
        return waitForItems(Math.min(delay * 2, WAIT_MAX_MS));
      }
      if (state.mode !== "empty") return;
      if (result.ok && result.status !== 204) {
        await show(result.data);
        return say("New items to label arrived.");
      }
      if (result.status === 401 || result.status === 403) return failed(result);
      refreshStatus();
      waitForItems(Math.min(delay * 2, WAIT_MAX_MS));
    }, delay);
  }

  function failed(result) {
    if (result.status === 401 || result.status === 403) {
      warn("You are signed out. Reload the page to sign in again.");
    } else {
      warn((result.data && result.data.message) || `The server answered ${result.status}.`);
    }
  }

  // ---- reveal, sketch, greyscale ---------------------------------------------------

  async function startReveal() {
    if (!state.lease || state.reveal || state.revealWanted || state.busy || breakDialog.open) return;
    state.revealWanted = true;
    const lease = state.lease;
    let response;
    try {
      response = await fetch(lease.original_url, { credentials: "same-origin", cache: "no-store" });
    } catch (error) {
      state.revealWanted = false;
      return warn("The original could not be loaded; check the connection and try again.");
    }
    if (!response.ok) {
      state.revealWanted = false;
      const body = await response.json().catch(() => ({}));
      if (response.status === 429) {
        return warn(`${body.message || "Today's budget of sensitive reveals is spent."} ` +
          "The sketch view (K) is still available.");
      }
      return warn(body.message || `The original could not be loaded (${response.status}).`);
    }
    const reveal = { id: response.headers.get("X-Veil-Reveal"), started: performance.now() };
    reveal.url = URL.createObjectURL(await response.blob());
    if (!state.revealWanted || state.lease !== lease) {
      // Released before the picture arrived: it was never shown.
      URL.revokeObjectURL(reveal.url);
      return finishReveal(reveal, 0);
    }
    state.reveal = reveal;
    state.revealed = true;
    views.original.src = reveal.url;
    await views.original.decode().catch(() => {});
    if (state.reveal === reveal) setMode("original");
  }

  function endReveal() {
    state.revealWanted = false;
    const reveal = state.reveal;
    if (!reveal) return;
    state.reveal = null;
    views.original.removeAttribute("src");
    URL.revokeObjectURL(reveal.url);
    setMode("blurred");
    finishReveal(reveal, performance.now() - reveal.started);
  }

  function finishReveal(reveal, ms) {
    if (!reveal.id) return;
    const url = config.urls.reveal_finish.replace("{id}", reveal.id);
    post(url, { duration_ms: Math.round(ms) }, { keepalive: true }).catch(() => {});
  }

  function toggleSketch() {
    if (!state.lease || state.reveal) return;
    if (state.mode === "sketch") return setMode("blurred");
    if (!views.sketch.getAttribute("src")) views.sketch.src = state.lease.sketch_url;
    setMode("sketch");
  }

  // ---- answers ---------------------------------------------------------------------

  async function submit(kind, category) {
    if (!state.lease || state.busy || breakDialog.open) return;
    endReveal();
    const lease = state.lease;
    const same = state.retry && state.retry.itemId === lease.item_id && state.retry.kind === kind &&
      state.retry.category === (category || "");
    const body = same ? state.retry.body : {
      client_key: newKey(), kind, category: category || "",
      time_spent_ms: Math.round(performance.now() - state.shownAt), revealed: state.revealed, note: "",
    };
    state.busy = true;
    warn("");
    try {
      const result = await postWithRetry(config.urls.submit.replace("{id}", lease.item_id), body);
      if (result.status >= 500) throw new Error(`server answered ${result.status}`);
      state.retry = null;
      if (result.ok) return await answered(kind, category);
      if (result.status !== 409 && result.status !== 404) return failed(result);
      // Answered elsewhere, full, or gone: say why and move on.
      say((result.data && result.data.message) || "This item is no longer yours.");
      await loadNext();
    } catch (error) {
      state.retry = { itemId: lease.item_id, kind, category: category || "", body };
      warn("The answer could not be sent. Press the same key again to retry.");
    } finally {
      state.busy = false;
    }
  }

  async function answered(kind, category) {
    if (kind === "flag") {
      buttons.flag.setAttribute("aria-pressed", "true");
      return say("Flagged for policy review. Label or skip it to go on.");
    }
    if (kind === "label") {
      const name = root.querySelector(`button[data-category="${category}"] .name`).textContent;
      say(`Labeled “${name}”.`);
    } else {
      say("Skipped.");
    }
    await loadNext();
  }

  async function undo() {
    if (state.busy || breakDialog.open) return;
    endReveal();
    state.busy = true;
    warn("");
    try {
      // An undo that may have landed keeps its key, so retrying never undoes two answers.
      state.undoKey = state.undoKey || newKey();
      const result = await postWithRetry(config.urls.undo, { client_key: state.undoKey });
      if (result.status >= 500) throw new Error(`server answered ${result.status}`);
      state.undoKey = null;
      if (result.status === 204) return say("Nothing to undo.");
      if (!result.ok) return failed(result);
      say("Your last answer was undone; the item is back.");
      await loadNext();
    } catch (error) {
      warn("The undo could not be sent. Press U to try again.");
    } finally {
      state.busy = false;
    }
  }

  // ---- break reminder --------------------------------------------------------------

  function maybeBreak(wellbeing) {
    if (!wellbeing.break_due || breakDialog.open) return;
    let snooze = JSON.parse(sessionStorage.getItem(SNOOZE_KEY) || "null");
    // A shorter streak than when the reminder was dismissed: the moderator took a break.
    if (snooze && wellbeing.streak_minutes < snooze.minutes) snooze = null;
    if (snooze && wellbeing.streak_minutes < snooze.minutes + config.break_after_minutes &&
        wellbeing.streak_sensitive_reveals < snooze.reveals + config.break_after_sensitive_reveals) return;
    const done = [];
    const minutes = Math.round(wellbeing.streak_minutes);
    if (minutes >= 1) done.push(`labeled for ${minutes} minute${minutes === 1 ? "" : "s"}`);
    const reveals = wellbeing.streak_sensitive_reveals;
    if (reveals >= 1) done.push(`revealed ${reveals} possibly sensitive image${reveals === 1 ? "" : "s"}`);
    byId("break-text").textContent = (done.length ? `You have ${done.join(" and ")}. ` : "") +
      "Step away from the screen for a few minutes; your place in the queue is kept.";
    breakDialog.dataset.minutes = String(wellbeing.streak_minutes);
    breakDialog.dataset.reveals = String(wellbeing.streak_sensitive_reveals);
    endReveal();
    breakDialog.showModal();
  }

  breakDialog.addEventListener("close", () => {
    sessionStorage.setItem(SNOOZE_KEY, JSON.stringify({
      minutes: Number(breakDialog.dataset.minutes), reveals: Number(breakDialog.dataset.reveals),
    }));
    state.shownAt = performance.now();
  });
  byId("break-continue").addEventListener("click", () => breakDialog.close());

  // ---- keyboard and buttons --------------------------------------------------------

  function toggleGuidelines(open = guidelines.hidden) {
    guidelines.hidden = !open;
    buttons.guidelines.setAttribute("aria-expanded", String(open));
    if (open) guidelines.scrollIntoView({ block: "nearest" });
  }

  const COMMANDS = {
    s: () => submit("skip"),
    u: undo,
    f: () => submit("flag"),
    k: toggleSketch,
    g: () => setGreyscale(!stage.classList.contains("greyscale")),
    "?": () => toggleGuidelines(),
    Escape: () => toggleGuidelines(false),
  };

  function typing(target) {
    return target instanceof HTMLElement &&
      (target.isContentEditable || ["INPUT", "SELECT", "TEXTAREA"].includes(target.tagName));
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target) || breakDialog.open) return;
    if (event.key === " ") {
      event.preventDefault();
      if (!event.repeat) startReveal();
      return;
    }
    if (event.repeat) return;
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    const command = COMMANDS[key] || COMMANDS[event.key];
    if (command) {
      event.preventDefault();
      command();
    } else if (categories.has(event.key)) {
      event.preventDefault();
      categories.get(event.key).click();
    }
  });
  document.addEventListener("keyup", (event) => {
    if (event.key === " ") {
      event.preventDefault();
      endReveal();
    }
  });
  // Hide the original whenever the page may miss the key release.
  window.addEventListener("blur", endReveal);
  document.addEventListener("visibilitychange", () => { if (document.hidden) endReveal(); });

  // The Reveal button shows the original while pressed; activated from the keyboard or
  // assistive technology (no pointer), it toggles.
  buttons.reveal.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    buttons.reveal.setPointerCapture(event.pointerId);
    startReveal();
  });
  for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
    buttons.reveal.addEventListener(type, endReveal);
  }
  buttons.reveal.addEventListener("click", (event) => {
    if (event.detail !== 0) return;
    if (state.reveal) endReveal(); else startReveal();
  });
  buttons.sketch.addEventListener("click", toggleSketch);
  buttons.greyscale.addEventListener("click", COMMANDS.g);
  buttons.skip.addEventListener("click", COMMANDS.s);
  buttons.undo.addEventListener("click", undo);
  buttons.flag.addEventListener("click", COMMANDS.f);
  buttons.guidelines.addEventListener("click", () => toggleGuidelines());

  // ---- display defaults ------------------------------------------------------------

  blurInput.addEventListener("input", () => setBlur(Number(blurInput.value)));
  greyInput.addEventListener("change", () => setGreyscale(greyInput.checked));
  prefsForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const response = await fetch(prefsForm.action, {
        method: "POST", credentials: "same-origin", body: new FormData(prefsForm),
        headers: { Accept: "application/json", "X-CSRFToken": csrf },
      });
      const data = await response.json().catch(() => ({}));
      if (response.ok) say("Display defaults saved."); else warn(data.message || "Not saved.");
    } catch (error) {
      warn("The defaults could not be saved; check the connection.");
    }
  });

  window.addEventListener("resize", sizeStage);
  setGreyscale(config.greyscale);
  setBlur(config.blur_strength);
  loadNext().catch(() => warn("The queue could not be reached. Reload the page to try again."));
})();
