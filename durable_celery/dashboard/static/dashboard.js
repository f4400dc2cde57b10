// durable-celery dashboard: live refresh over server-sent events, and confirmations.
// No framework and nothing from a CDN: the page is rendered on the server; on each event the
// <main> of the current URL is fetched again and swapped in, keeping any form being filled in.
(function () {
  "use strict";
  const main = document.getElementById("main");
  const dot = document.getElementById("live-state");
  const root = document.body.dataset.root || "";
  if (!main) return;

  let timer = null;
  let inFlight = false;
  let again = false;

  function dirtyForms() {
    const kept = new Map();
    main.querySelectorAll("form[data-form-key]").forEach(function (form) {
      if (form.dataset.dirty === "1" || form.contains(document.activeElement)) kept.set(form.dataset.formKey, form);
    });
    return kept;
  }

  function refresh() {
    if (inFlight) { again = true; return; }
    inFlight = true;
    fetch(window.location.href, { headers: { "X-Durable-Fragment": "1" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        const next = document.createElement("template");
        next.innerHTML = html;
        dirtyForms().forEach(function (form, key) {
          const fresh = next.content.querySelector('form[data-form-key="' + CSS.escape(key) + '"]');
          if (fresh) fresh.replaceWith(form);
        });
        const focused = document.activeElement;
        main.replaceChildren(next.content);
        if (focused && main.contains(focused)) focused.focus();
        main.dispatchEvent(new CustomEvent("durable:refreshed", { bubbles: true }));
        document.body.dataset.refreshed = String(Date.now());
      })
      .catch(function () { /* the next event or reconnect tries again */ })
      .finally(function () {
        inFlight = false;
        if (again) { again = false; schedule(); }
      });
  }

  function schedule() {
    if (timer !== null) return;
    timer = setTimeout(function () { timer = null; refresh(); }, 150);
  }

  document.addEventListener("input", function (event) {
    const form = event.target.closest && event.target.closest("form[data-form-key]");
    if (form) form.dataset.dirty = "1";
  });

  document.addEventListener("submit", function (event) {
    const form = event.target;
    const question = form.dataset && form.dataset.confirm;
    if (question && !window.confirm(question)) event.preventDefault();
  });

  const live = main.dataset.live;
  if (live && window.EventSource) {
    const params = new URLSearchParams();
    if (live.indexOf("execution:") === 0) params.set("execution", live.slice("execution:".length));
    const source = new EventSource(root + "/events" + (params.toString() ? "?" + params : ""));
    source.onopen = function () {
      if (dot) { dot.classList.add("on"); dot.title = "live: updates as they happen"; }
      document.body.dataset.live = "on";
      schedule(); // whatever changed while connecting
    };
    source.onerror = function () {
      if (dot) { dot.classList.remove("on"); dot.title = "live updates: reconnecting"; }
      document.body.dataset.live = "off";
    };
    source.onmessage = schedule;
  }
})();
