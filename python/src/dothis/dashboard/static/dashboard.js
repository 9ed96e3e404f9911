// dothis dashboard: live counts over server-sent events, confirmations, selection. No build step.
(function () {
  "use strict";
  var body = document.body;
  var root = body.dataset.root || "";
  var updates = 0;
  var refreshing = false;
  var again = false;
  var lastEvent = null;
  var lastHtml = null;

  // Every action form asks first; the question is the form's data-confirm.
  document.addEventListener("submit", function (event) {
    var question = event.target.dataset.confirm;
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });

  // The "select all" box of a task list.
  document.addEventListener("change", function (event) {
    if (!event.target.matches("[data-select-all]")) { return; }
    var boxes = event.target.closest("table").querySelectorAll("input[name=id]");
    boxes.forEach(function (box) { box.checked = event.target.checked; });
  });

  // Write the counts into the page; whether any shown number changed.
  function setCounts(queues) {
    var changed = false;
    Object.keys(queues).forEach(function (queue) {
      var row = queues[queue];
      Object.keys(row).forEach(function (state) {
        var selector = '[data-count="' + CSS.escape(queue + "|" + state) + '"]';
        document.querySelectorAll(selector).forEach(function (node) {
          if (node.textContent !== String(row[state])) {
            node.textContent = String(row[state]);
            changed = true;
          }
        });
      });
    });
    return changed;
  }

  // Re-render the page's live block (its own URL with partial=1), unless a box is ticked.
  function refresh() {
    var block = document.querySelector("[data-live-block]");
    if (!block || block.querySelector("input[name=id]:checked")) { return; }
    if (refreshing) { again = true; return; }
    refreshing = true;
    var url = new URL(window.location.href);
    url.searchParams.set("partial", "1");
    url.searchParams.delete("notice");
    fetch(url.toString(), { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html !== null && html !== lastHtml) {
          if (lastHtml !== null || html.trim() !== block.innerHTML.trim()) { block.innerHTML = html; }
          lastHtml = html;
        }
      })
      .catch(function () { return null; })
      .then(function () {
        refreshing = false;
        body.dataset.refreshes = String(Number(body.dataset.refreshes || 0) + 1);
        if (again) { again = false; refresh(); }
      });
  }

  if (!window.EventSource) { return; }
  var live = document.getElementById("live");
  var source = new EventSource(root + "/events");
  source.addEventListener("open", function () { if (live) { live.classList.add("on"); } });
  source.addEventListener("error", function () { if (live) { live.classList.remove("on"); } });
  source.addEventListener("counts", function (event) {
    var data = JSON.parse(event.data);
    updates += 1;
    body.dataset.updates = String(updates);
    if (live) { live.title = data.error ? "Redis: " + data.error : "live updates"; }
    var changed = data.queues ? setCounts(data.queues) : false;
    // The first event is the state the page was rendered from, unless a count it shows moved.
    if (changed || (lastEvent !== null && lastEvent !== event.data)) { refresh(); }
    lastEvent = event.data;
  });
})();
