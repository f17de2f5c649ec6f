// Countersign console: live updates. The page names its event stream in <body data-live>;
// on each `change` event it fetches itself again and replaces every [data-live-region]
// element by id. The decision form is replaced only when what can be decided changed
// (its data-key), so a comment being typed is not lost.
"use strict";
(function () {
  var url = document.body.getAttribute("data-live");
  if (!url || !window.EventSource) return;
  var busy = false, again = false;
  function note(text) {
    var n = document.getElementById("live-note");
    if (!n) {
      n = document.createElement("div");
      n.id = "live-note";
      n.className = "live-note";
      n.setAttribute("role", "status");
      document.body.appendChild(n);
    }
    n.textContent = text;
    setTimeout(function () { if (n.parentNode) n.parentNode.removeChild(n); }, 4000);
  }
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (text) {
        if (!text) return;
        var doc = new DOMParser().parseFromString(text, "text/html");
        var changed = false;
        doc.querySelectorAll("[data-live-region]").forEach(function (fresh) {
          var old = document.getElementById(fresh.id);
          if (!old) return;
          if (old.hasAttribute("data-key") && old.getAttribute("data-key") === fresh.getAttribute("data-key")) return;
          if (old.innerHTML !== fresh.innerHTML) {
            old.innerHTML = fresh.innerHTML;
            if (fresh.hasAttribute("data-key")) old.setAttribute("data-key", fresh.getAttribute("data-key"));
            changed = true;
          }
        });
        if (changed) {
          document.body.setAttribute("data-refreshed", String(Date.now()));
          note("Updated: someone decided");
        }
      })
      .catch(function () {})
      .then(function () { busy = false; if (again) { again = false; refresh(); } });
  }
  var source = new EventSource(url);
  source.addEventListener("change", function (e) {
    refresh();
    // A request stream ends once the request is closed: do not reconnect to it.
    if (e.data && isNaN(Number(e.data)) && e.data !== "pending") source.close();
  });
  source.addEventListener("open", function () { document.body.setAttribute("data-live-ready", "1"); });
})();
