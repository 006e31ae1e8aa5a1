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

  function showNode(node) {
    document.querySelectorAll('[data-node="' + node.node_id + '"]').forEach(function (root) {
      var available = node.status === "available";
      setText(root, "status", node.status);
      if (node.source) setText(root, "status-note", statusNote(node));
      setText(root, "queued", node.queued === null ? "unknown" : String(node.queued));
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
    switches();
    createForm();
  });
})();
