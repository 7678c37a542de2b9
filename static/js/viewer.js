// The admins' image viewer on the review and flag pages. A button with data-viewer-image
// opens it on that image, blurred. "Sketch" shows the edge sketch; "Reveal original"
// fetches the original (a recorded reveal, counted with the admin's sensitive reveals)
// and shows it until hidden or the viewer closes, when the reveal's duration is sent.
// Only the revealed original zooms (wheel, buttons, full size) and pans (drag).
(function () {
  "use strict";
  const dialog = document.getElementById("viewer");
  if (!dialog) return;
  const byId = (id) => document.getElementById(id);
  const csrf = dialog.querySelector("[name=csrfmiddlewaretoken]").value;
  const stage = byId("viewer-stage");
  const picture = byId("viewer-picture");
  const buttons = {
    reveal: byId("viewer-reveal"), sketch: byId("viewer-sketch"), close: byId("viewer-close"),
    zoomIn: byId("viewer-zoom-in"), zoomOut: byId("viewer-zoom-out"), fit: byId("viewer-fit"), full: byId("viewer-full"),
  };
  const MIN_SCALE = 1;
  const MAX_SCALE = 16;
  const state = { image: null, mode: "blurred", reveal: null, scale: 1, x: 0, y: 0, drag: null };

  function url(imageId, variant) {
    return dialog.dataset.imageUrl.replace("/0/", `/${imageId}/`).replace("VARIANT", variant);
  }

  function warn(text) {
    const alert = byId("viewer-alert");
    alert.textContent = text || "";
    alert.hidden = !text;
  }

  function setMode(mode) {
    state.mode = mode;
    stage.dataset.mode = mode;
    byId("viewer-mode").textContent = mode === "original" ? "original (revealed)" : mode;
    buttons.reveal.setAttribute("aria-pressed", String(mode === "original"));
    buttons.reveal.textContent = mode === "original" ? "Hide original" : "Reveal original";
    buttons.sketch.setAttribute("aria-pressed", String(mode === "sketch"));
    for (const key of ["zoomIn", "zoomOut", "fit", "full"]) buttons[key].disabled = mode !== "original";
    resetView();
  }

  // ---- zoom and pan, on the revealed original only ---------------------------------

  function apply() {
    picture.style.transform = `translate(${state.x}px, ${state.y}px) scale(${state.scale})`;
    byId("viewer-zoom").textContent = state.scale === 1 ? "fit" : `${Math.round(state.scale * 100)}%`;
  }

  function resetView() {
    state.scale = 1;
    state.x = 0;
    state.y = 0;
    apply();
  }

  // Keep the picture covering its box: no panning past its edges.
  function clamp() {
    const maxX = (picture.clientWidth * (state.scale - 1)) / 2;
    const maxY = (picture.clientHeight * (state.scale - 1)) / 2;
    state.x = Math.max(-maxX, Math.min(maxX, state.x));
    state.y = Math.max(-maxY, Math.min(maxY, state.y));
  }

  // Zoom by ``factor`` keeping the point (px, py), relative to the picture's centre, in place.
  function zoom(factor, px = 0, py = 0) {
    if (state.mode !== "original") return;
    const scale = Math.max(MIN_SCALE, Math.min(MAX_SCALE, state.scale * factor));
    const ratio = scale / state.scale;
    state.x = px - (px - state.x) * ratio;
    state.y = py - (py - state.y) * ratio;
    state.scale = scale;
    clamp();
    apply();
  }

  function fullSize() {
    if (state.mode !== "original" || !picture.clientWidth) return;
    zoom(picture.naturalWidth / picture.clientWidth / state.scale);
  }

  stage.addEventListener("wheel", (event) => {
    if (state.mode !== "original") return;
    event.preventDefault();
    const box = stage.getBoundingClientRect();
    zoom(event.deltaY < 0 ? 1.25 : 0.8, event.clientX - box.left - box.width / 2,
      event.clientY - box.top - box.height / 2);
  }, { passive: false });

  stage.addEventListener("pointerdown", (event) => {
    if (state.mode !== "original") return;
    event.preventDefault();
    stage.setPointerCapture(event.pointerId);
    state.drag = { x: event.clientX - state.x, y: event.clientY - state.y };
    stage.classList.add("dragging");
  });
  stage.addEventListener("pointermove", (event) => {
    if (!state.drag) return;
    state.x = event.clientX - state.drag.x;
    state.y = event.clientY - state.drag.y;
    clamp();
    apply();
  });
  for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
    stage.addEventListener(type, () => {
      state.drag = null;
      stage.classList.remove("dragging");
    });
  }

  // ---- blurred, sketch, original ---------------------------------------------------

  function showBlurred() {
    picture.src = url(state.image, "blurred");
    picture.alt = `Image ${state.image}, blurred`;
    setMode("blurred");
  }

  function toggleSketch() {
    if (!state.image) return;
    hideOriginal();
    if (state.mode === "sketch") return showBlurred();
    picture.src = url(state.image, "sketch");
    picture.alt = `Image ${state.image}, edge sketch`;
    setMode("sketch");
  }

  async function reveal() {
    if (!state.image || state.reveal) return;
    const image = state.image;
    warn("");
    let response;
    try {
      response = await fetch(url(image, "original"), { credentials: "same-origin", cache: "no-store" });
    } catch (error) {
      return warn("The original could not be loaded; check the connection and try again.");
    }
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      return warn(body.message || `The original could not be loaded (${response.status}).`);
    }
    const shown = { id: response.headers.get("X-Veil-Reveal"), started: performance.now() };
    shown.url = URL.createObjectURL(await response.blob());
    if (state.image !== image || !dialog.open) {
      URL.revokeObjectURL(shown.url);
      return finish(shown, 0);
    }
    state.reveal = shown;
    picture.src = shown.url;
    picture.alt = `Image ${image}, original`;
    await picture.decode().catch(() => {});
    if (state.reveal === shown) setMode("original");
  }

  function hideOriginal() {
    const shown = state.reveal;
    if (!shown) return;
    state.reveal = null;
    URL.revokeObjectURL(shown.url);
    finish(shown, performance.now() - shown.started);
  }

  function finish(shown, ms) {
    if (!shown.id) return;
    fetch(dialog.dataset.revealFinish.replace("/0/", `/${shown.id}/`), {
      method: "POST",
      credentials: "same-origin",
      keepalive: true,
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify({ duration_ms: Math.round(ms) }),
    }).catch(() => {});
  }

  function open(imageId) {
    state.image = imageId;
    byId("viewer-image-id").textContent = `#${imageId}`;
    warn("");
    showBlurred();
    if (!dialog.open) dialog.showModal();
  }

  function close() {
    hideOriginal();
    picture.removeAttribute("src");
    state.image = null;
    setMode("blurred");
  }

  document.querySelectorAll("[data-viewer-image]").forEach((button) => {
    button.addEventListener("click", () => open(button.dataset.viewerImage));
  });
  buttons.reveal.addEventListener("click", () => {
    if (state.reveal) {
      hideOriginal();
      showBlurred();
    } else {
      reveal();
    }
  });
  buttons.sketch.addEventListener("click", toggleSketch);
  buttons.zoomIn.addEventListener("click", () => zoom(1.5));
  buttons.zoomOut.addEventListener("click", () => zoom(1 / 1.5));
  buttons.fit.addEventListener("click", resetView);
  buttons.full.addEventListener("click", fullSize);
  buttons.close.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", close);
  // Hide the original whenever the admin may have looked away.
  document.addEventListener("visibilitychange", () => {
    if (document.hidden && state.reveal) {
      hideOriginal();
      showBlurred();
    }
  });
})();
