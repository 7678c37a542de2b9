// Poll unfinished jobs and update their progress bars; reload once they all finish
// so the summaries on the page are current.
(function () {
  "use strict";
  const rows = Array.from(document.querySelectorAll("tr.job"))
    .filter((row) => row.dataset.status === "pending" || row.dataset.status === "running");
  if (!rows.length) return;

  async function poll() {
    let unfinished = 0;
    for (const row of rows) {
      const response = await fetch(row.dataset.url, { credentials: "same-origin" });
      if (!response.ok) continue;
      const job = await response.json();
      row.dataset.status = job.status;
      row.querySelector(".job-status").textContent = job.status;
      const bar = row.querySelector("progress");
      // Without a total yet (a run bounded by minutes, before it knows its pace) the
      // bar is indeterminate rather than full or empty.
      if (job.total) {
        bar.max = job.total;
        bar.value = job.done;
      } else {
        bar.removeAttribute("value");
      }
      row.querySelector(".job-count").textContent = job.total ? `${job.done}/${job.total}` : `${job.done}`;
      row.querySelector(".job-error").textContent = job.error || "";
      if (job.status === "pending" || job.status === "running") unfinished += 1;
    }
    if (unfinished) {
      window.setTimeout(poll, 1000);
    } else {
      window.location.reload();
    }
  }
  window.setTimeout(poll, 500);
})();
