// The console's live parts, without a build step: an element with
// data-refresh="URL" data-every="MS" has its content replaced by URL's every MS
// milliseconds; a fragment containing [data-refresh-stop] ends the refreshing.
// A checkbox with data-select-all="NAME" ticks every checkbox named NAME.
"use strict";

function refresh(element) {
  const url = element.dataset.refresh;
  const every = parseInt(element.dataset.every || "3000", 10);
  let timer = null;
  async function tick() {
    try {
      const response = await fetch(url, {credentials: "same-origin", headers: {"Accept": "text/html"}});
      if (response.status === 401) {
        window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname));
        return;
      }
      if (response.ok) {
        element.innerHTML = await response.text();
        element.dataset.refreshedAt = String(Date.now());
        if (element.querySelector("[data-refresh-stop]")) {
          return;
        }
      }
    } catch (error) {
      // The console may be restarting: keep trying at the same pace.
    }
    timer = window.setTimeout(tick, every);
  }
  timer = window.setTimeout(tick, every);
  return () => window.clearTimeout(timer);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-refresh]").forEach(refresh);
  document.querySelectorAll("[data-select-all]").forEach((box) => {
    box.addEventListener("change", () => {
      const name = box.dataset.selectAll;
      box.form.querySelectorAll(`input[type=checkbox][name="${name}"]`).forEach((other) => {
        other.checked = box.checked;
      });
    });
  });
});
