// toolmux console: live updates without reloading. Polls /ui/live (same origin, no library).
(function () {
  "use strict";
  var POLL_MS = 2000;
  var page = document.body.getAttribute("data-page");
  var feed = document.querySelector("#activity tbody");
  var liveState = document.getElementById("live-state");

  function cell(text, className) {
    var td = document.createElement("td");
    if (className) {
      var span = document.createElement("span");
      span.className = className;
      span.textContent = text;
      td.appendChild(span);
    } else {
      td.textContent = text;
    }
    return td;
  }

  function row(entry) {
    var tr = document.createElement("tr");
    tr.className = "fresh";
    tr.setAttribute("data-id", entry.id);
    var ok = entry.status === "ok" || entry.status === "cache_hit";
    tr.appendChild(cell(entry.time));
    tr.appendChild(cell(entry.key));
    tr.appendChild(cell(entry.kind));
    tr.appendChild(cell(entry.name));
    tr.appendChild(cell(entry.status, "pill " + (ok ? "ok" : "bad")));
    tr.appendChild(cell(entry.latency_ms === null ? "" : String(entry.latency_ms)));
    tr.appendChild(cell(entry.tokens ? String(entry.tokens) : ""));
    tr.appendChild(cell(entry.cost ? "$" + entry.cost.toFixed(6) : ""));
    return tr;
  }

  function setText(id, text) {
    var el = document.getElementById(id);
    if (el) { el.textContent = text; }
  }

  function poll() {
    var after = feed ? feed.getAttribute("data-last") || "0" : "0";
    var query = liveState ? liveState.getAttribute("data-query") : "";
    fetch("/ui/live?after=" + encodeURIComponent(after) + (query ? "&" + query : ""), {
      credentials: "same-origin",
      headers: { "Accept": "application/json" }
    }).then(function (response) {
      if (response.status === 401) { window.location.assign("/ui/login"); return null; }
      return response.ok ? response.json() : null;
    }).then(function (data) {
      if (!data) { return; }
      if (feed && data.activity.length) {
        for (var i = data.activity.length - 1; i >= 0; i--) {
          feed.insertBefore(row(data.activity[i]), feed.firstChild);
        }
        feed.setAttribute("data-last", String(data.activity[0].id));
      }
      if (page === "overview") {
        setText("status", data.overview.status);
        setText("up", data.overview.up + "/" + data.overview.servers.length);
        setText("tools", String(data.overview.tools));
      }
    }).catch(function () {
      if (liveState) { liveState.textContent = "Live updates paused (the hub did not answer)."; }
    });
  }

  if (page === "activity" || page === "overview") {
    window.setInterval(poll, POLL_MS);
  }
})();
