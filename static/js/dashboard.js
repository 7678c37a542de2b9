// The dashboard's small interactions: the pretrain button repeats the chosen minutes,
// and a point of the embedding map shows its image's blurred derivative beside the map.
(function () {
  "use strict";

  const minutes = document.querySelector("form.pretrain input[name=minutes]");
  const echo = document.querySelector("form.pretrain .minutes-echo");
  if (minutes && echo) {
    minutes.addEventListener("input", () => { echo.textContent = minutes.value || "N"; });
  }

  const map = document.querySelector("#embedding-map svg.scatter");
  const preview = document.getElementById("map-preview");
  if (!map || !preview) return;
  const img = preview.querySelector("img");
  const caption = preview.querySelector(".preview-caption");
  let selected = null;

  function show(point) {
    const url = point.dataset.blurredUrl;
    if (!url) return;
    if (img.getAttribute("src") !== url) img.src = url;
    img.alt = `blurred image ${point.dataset.imageId}`;
    img.hidden = false;
    const how = { consensus: "human label", prediction: "predicted" }[point.dataset.source];
    caption.textContent = `Image ${point.dataset.imageId} · ${point.dataset.label}` +
      (how ? ` (${how})` : "") + (point.dataset.split === "eval" ? " · evaluation split" : "");
  }

  map.addEventListener("mouseover", (event) => {
    const point = event.target.closest("circle.point");
    if (point) show(point);
  });
  map.addEventListener("mouseleave", () => { if (selected) show(selected); });
  map.addEventListener("click", (event) => {
    const point = event.target.closest("circle.point");
    if (!point) return;
    if (selected) selected.classList.remove("selected");
    selected = point;
    point.classList.add("selected");
    show(point);
  });
})();
