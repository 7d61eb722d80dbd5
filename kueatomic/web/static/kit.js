// kueatomic dashboard, shared pieces: HTTP, text-only DOM helpers, formatting, the confirm
// dialog and the outage banner. Loaded first; app.js (jobs) and views.js (workers, activity,
// repeats) use them through window.Kue. Job data is only ever inserted with textContent.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const enc = encodeURIComponent;

  // --- HTTP --------------------------------------------------------------------------------
  // A body (any JSON value) is sent as application/json, which the server's guard requires.
  async function api(path, method, body) {
    const init = { method: method || "GET", headers: { Accept: "application/json" }, cache: "no-store" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      const error = new Error("the dashboard's server cannot be reached");
      error.status = 0;
      throw error;
    }
    let payload = null;
    const text = await response.text();
    if (text) {
      try { payload = JSON.parse(text); } catch (e) { payload = { error: text.slice(0, 200) }; }
    }
    if (!response.ok) {
      const error = new Error((payload && payload.error) || response.status + " " + response.statusText);
      error.status = response.status;
      throw error;
    }
    return payload;
  }

  // --- DOM (text only) ---------------------------------------------------------------------
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function setText(node, text) {
    const value = text === undefined || text === null ? "" : String(text);
    if (node.textContent !== value) node.textContent = value;
  }
  function toast(message, bad) {
    const node = el("div", "toast" + (bad ? " bad" : ""), message);
    $("toasts").appendChild(node);
    setTimeout(() => node.remove(), bad ? 6000 : 3000);
  }
  function pretty(value) {
    if (typeof value === "string") return value;
    try { return JSON.stringify(value, null, 2); } catch (e) { return String(value); }
  }

  // --- formatting --------------------------------------------------------------------------
  function ms(value) { const n = Number(value); return Number.isFinite(n) && value !== "" && value !== null ? n : null; }
  function span(seconds) {
    if (seconds < 60) return seconds + "s";
    if (seconds < 3600) return Math.floor(seconds / 60) + "m " + (seconds % 60) + "s";
    if (seconds < 86400) return Math.floor(seconds / 3600) + "h " + Math.floor((seconds % 3600) / 60) + "m";
    return Math.floor(seconds / 86400) + "d " + Math.floor((seconds % 86400) / 3600) + "h";
  }
  function ago(value) {
    const t = ms(value);
    if (t === null) return "";
    const s = Math.round((Date.now() - t) / 1000);
    if (s < -1) return "in " + span(-s);
    if (s < 2) return "just now";
    return span(s) + " ago";
  }
  function duration(value) {
    const n = ms(value);
    if (n === null) return "";
    if (n < 1000) return Math.round(n) + " ms";
    if (n < 60000) return (n / 1000).toFixed(n < 10000 ? 2 : 1) + " s";
    return span(Math.round(n / 1000));
  }
  function when(value) {
    const t = ms(value);
    return t === null ? "" : new Date(t).toLocaleString() + " (" + ago(value) + ")";
  }
  function plural(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }

  // --- the confirm dialog: says what will happen; resolves true on OK ------------------------
  function confirmAction(text, okLabel, danger) {
    const dialog = $("confirm");
    setText($("confirm-text"), text);
    const ok = $("confirm-ok");
    setText(ok, okLabel);
    ok.className = "button " + (danger ? "danger" : "primary");
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
      dialog.returnValue = "cancel";
      dialog.showModal();
      ok.focus();
    });
  }

  // --- the outage banner: Redis down (503) or the server gone; cleared by the next answer ----
  function reportHealth(error) {
    const banner = $("outage");
    const live = $("live");
    if (!error) {
      banner.hidden = true;
      live.className = "live ok";
      setText(live, document.hidden ? "paused" : "live");
      return;
    }
    const redisDown = error.status === 503;
    setText($("outage-title"), redisDown ? "Redis is unreachable" : "The dashboard's server is not answering");
    setText($("outage-detail"), error.message + ". The page retries on its own and clears this banner when it answers again.");
    banner.hidden = false;
    live.className = "live down";
    setText(live, redisDown ? "Redis down" : "server down");
  }

  // --- which view the main pane shows: "jobs" (app.js) or workers, activity, repeats
  // (views.js). The URL keeps it (?view=), and a "kue:view" event tells the views.
  const VIEWS = ["jobs", "workers", "activity", "repeats"];
  function currentView() { return document.body.dataset.view || "jobs"; }
  function showView(name) {
    const next = VIEWS.includes(name) ? name : "jobs";
    document.body.dataset.view = next;
    for (const section of document.querySelectorAll("[data-view-pane]")) {
      section.hidden = section.dataset.viewPane !== next;
    }
    for (const link of document.querySelectorAll(".view-link")) {
      link.classList.toggle("selected", link.dataset.view === next);
    }
    if (next !== "jobs") {
      for (const link of document.querySelectorAll(".state")) link.classList.remove("selected");
    }
    document.dispatchEvent(new CustomEvent("kue:view", { detail: next }));
  }

  window.Kue = { currentView, showView, $, enc, api, el, setText, toast, pretty, ms, span, ago, duration, when, plural,
    confirmAction, reportHealth };
})();
