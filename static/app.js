// regiondb pages: progressive enhancement only. Every form also works
// without this file (it posts and the server renders the page again).
"use strict";

(function () {
  // ---- live node overview over Server-Sent Events ----

  function setText(root, field, text) {
    root.querySelectorAll('[data-field="' + field + '"]').forEach(function (el) {
      el.textContent = text;
    });
  }

  // The status in words, with who set it: as the server renders it
  // (NodeView::status_note in src/monitor.rs).
  function statusNote(node) {
    var at = node.since ? node.since.slice(11, 19) : null;
    if (node.status === "unavailable") {
      if (node.source === "probe") return at ? "unavailable — detected " + at + " UTC" : "unavailable — detected";
      return at ? "switched off at " + at + " UTC" : "switched off";
    }
    if (node.source === "probe" && at) return "available — answering again since " + at + " UTC";
    return "available";
  }

  // ---- queue charts: the server draws the last 5 minutes; each event
  // adds a point (src/http/pages/chart.rs draws the same) ----

  var HISTORY_MS = 300000, MIN_SPAN_MS = 60000, WIDTH = 300, HEIGHT = 60, PAD = 2;
  var series = {};

  function humanSeconds(secs) {
    var s = Math.round(Math.max(0, secs));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min" + (s % 60 ? " " + (s % 60) + " s" : "");
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }

  // The queue in words: as the server says it (NodeView::queue_summary).
  function queueSummary(node) {
    if (node.queued === null || node.queued === undefined) return "queue size unknown";
    if (node.queued === 0) return "nothing queued";
    if (node.drain_eta_seconds !== null && node.replay_rate !== null) {
      return node.queued + " queued, draining at " + Math.round(node.replay_rate) +
        "/s, about " + humanSeconds(node.drain_eta_seconds) + " left";
    }
    var lag = node.lag_seconds === null ? "" : ", oldest " + humanSeconds(node.lag_seconds) + " old";
    return node.queued + " queued" + lag + "; " + (node.drain_eta_note || "no estimate");
  }

  function seriesOf(nodeId) {
    if (!series[nodeId]) {
      var figure = document.querySelector('[data-node="' + nodeId + '"] [data-field="chart"]');
      var seeded = [];
      try { seeded = JSON.parse(figure ? figure.getAttribute("data-history") : "[]"); } catch (e) { seeded = []; }
      series[nodeId] = { points: seeded, last: null };
    }
    return series[nodeId];
  }

  function addPoint(nodeId, queued, rate) {
    var s = seriesOf(nodeId), now = Date.now();
    var last = s.points[s.points.length - 1];
    if (last && now - last[0] < 900) s.points.pop();
    s.points.push([now, queued, rate]);
    while (s.points.length && s.points[0][0] < now - HISTORY_MS) s.points.shift();
    s.last = [queued, rate];
  }

  function spanOf(points, now) {
    var oldest = points.length ? now - points[0][0] : MIN_SPAN_MS;
    return Math.min(Math.max(oldest, MIN_SPAN_MS), HISTORY_MS);
  }

  function line(points, index, now) {
    var top = 0, span = spanOf(points, now);
    points.forEach(function (p) { top = Math.max(top, p[index]); });
    return points.map(function (p) {
      var age = Math.min(Math.max(now - p[0], 0), span);
      var x = WIDTH * (1 - age / span);
      var y = HEIGHT - PAD - (top > 0 ? p[index] / top : 0) * (HEIGHT - 2 * PAD);
      return x.toFixed(1) + "," + y.toFixed(1);
    }).join(" ");
  }

  function drawChart(nodeId) {
    var s = seriesOf(nodeId), now = Date.now(), peak = 0;
    s.points.forEach(function (p) { peak = Math.max(peak, p[1]); });
    document.querySelectorAll('[data-node="' + nodeId + '"] [data-field="chart"]').forEach(function (figure) {
      figure.querySelector('[data-field="queued-line"]').setAttribute("points", line(s.points, 1, now));
      figure.querySelector('[data-field="rate-line"]').setAttribute("points", line(s.points, 2, now));
      figure.querySelector('[data-field="peak"]').textContent = String(peak);
      figure.querySelector('[data-field="span"]').textContent = "last " + humanSeconds(spanOf(s.points, now) / 1000);
    });
  }

  // Events come only on changes: a queue that stands still still moves
  // along the time axis.
  function tick() {
    Object.keys(series).forEach(function (nodeId) {
      var s = series[nodeId];
      if (s.last) addPoint(nodeId, s.last[0], s.last[1]);
      drawChart(nodeId);
    });
  }

  function showNode(node) {
    if (node.queued !== null && node.queued !== undefined) {
      addPoint(node.node_id, node.queued, node.replay_rate || 0);
      drawChart(node.node_id);
    }
    document.querySelectorAll('[data-node="' + node.node_id + '"]').forEach(function (root) {
      var available = node.status === "available";
      setText(root, "status", node.status);
      if (node.source) setText(root, "status-note", statusNote(node));
      setText(root, "queued", node.queued === null ? "unknown" : String(node.queued));
      if ("drain_eta_note" in node) setText(root, "queue-summary", queueSummary(node));
      if ("replay_paused" in node) {
        root.querySelectorAll('[data-field="paused"]').forEach(function (el) {
          el.hidden = !node.replay_paused;
        });
        root.querySelectorAll(".replay-form").forEach(function (form) {
          form.elements.paused.value = node.replay_paused ? "false" : "true";
          form.querySelector('[data-field="replay-button"]').textContent =
            node.replay_paused ? "Resume replay" : "Pause replay";
        });
      }
      root.querySelectorAll('[data-field="dot"]').forEach(function (dot) {
        dot.className = "dot dot-" + node.status;
      });
      root.querySelectorAll('[data-field="switch"]').forEach(function (sw) {
        if (sw.getAttribute("aria-busy") !== "true") {
          sw.setAttribute("aria-checked", available ? "true" : "false");
        }
      });
      root.querySelectorAll('[data-field="next-status"]').forEach(function (input) {
        input.value = available ? "unavailable" : "available";
      });
    });
  }

  function live() {
    if (!window.EventSource || !document.querySelector("[data-node]")) return;
    var indicator = document.querySelector("[data-live-indicator]");
    var text = document.querySelector("[data-live-text]");
    function state(ok) {
      if (!indicator) return;
      indicator.hidden = false;
      indicator.classList.toggle("offline", !ok);
      text.textContent = ok ? "Live" : "Reconnecting…";
    }
    var source;
    function connect() {
      source = new EventSource("/events");
      source.addEventListener("open", function () { state(true); });
      source.addEventListener("nodes", function (e) {
        state(true);
        JSON.parse(e.data).forEach(showNode);
      });
      source.addEventListener("error", function () {
        state(false);
        // The browser retries by itself unless the stream was closed for good.
        if (source.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
      });
    }
    connect();
  }

  // ---- node switches: call the API and show the server's answer ----

  function switches() {
    document.querySelectorAll(".switch-form").forEach(function (form) {
      form.addEventListener("submit", function (e) {
        e.preventDefault();
        var card = form.closest("[data-node]");
        var sw = form.querySelector('[data-field="switch"]');
        var message = card.querySelector('[data-field="message"]');
        var nodeId = form.elements.node_id.value;
        var wanted = form.elements.status.value;
        var headers = { "content-type": "application/json" };
        // Signed in (ADMIN_TOKEN set): the API takes the session cookie
        // with this page's CSRF token.
        if (form.elements.csrf) headers["x-csrf-token"] = form.elements.csrf.value;
        var before = sw.getAttribute("aria-checked");
        sw.setAttribute("aria-busy", "true");
        sw.setAttribute("aria-checked", wanted === "available" ? "true" : "false");
        message.textContent = "";
        fetch("/node-status", {
          method: "POST",
          headers: headers,
          body: JSON.stringify({ node_id: nodeId, status: wanted })
        }).then(function (r) {
          return r.json().catch(function () { return {}; }).then(function (body) {
            if (r.status === 401) throw new Error("sign in with the admin token first");
            if (!r.ok) throw new Error(body.error || ("HTTP " + r.status));
            sw.removeAttribute("aria-busy");
            showNode(body);
          });
        }).catch(function (err) {
          sw.removeAttribute("aria-busy");
          sw.setAttribute("aria-checked", before);
          message.textContent = "Could not switch " + nodeId + ": " + err.message;
        });
      });
    });
  }

  // ---- create form: post it and swap in the server-rendered section ----

  function createForm() {
    var form = document.getElementById("create-form");
    if (!form) return;
    form.addEventListener("submit", function (e) {
      if (!form.checkValidity()) {
        // Let the browser's own hints (required, digits) speak first.
        e.preventDefault();
        form.reportValidity();
        return;
      }
      e.preventDefault();
      var button = form.querySelector('button[type="submit"]');
      button.disabled = true;
      fetch(form.action, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams(new FormData(form)).toString()
      }).then(function (r) { return r.text(); }).then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("create-section");
        var section = document.getElementById("create-section");
        if (!fresh || !section) throw new Error("unexpected answer");
        section.replaceWith(fresh);
        createForm();
        var invalid = fresh.querySelector('[aria-invalid="true"]');
        if (invalid) invalid.focus();
      }).catch(function (err) {
        button.disabled = false;
        var result = document.getElementById("result");
        result.innerHTML = "";
        var box = document.createElement("div");
        box.className = "result result-failed";
        box.setAttribute("role", "status");
        box.textContent = "Could not reach regiondb: " + err.message;
        result.appendChild(box);
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    live();
    if (document.querySelector('[data-field="chart"]')) setInterval(tick, 2000);
    switches();
    createForm();
  });
})();
