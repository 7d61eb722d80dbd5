// kueatomic dashboard, the operator views beside the job lists: live workers (GET workers),
// the last hour's activity as charts (GET stats/activity) and repeatable jobs (GET repeats,
// DELETE repeats/:name). The one shown is polled; the others are left alone.
"use strict";

(function () {
  const { $, enc, api, el, setText, toast, ago, when, duration, plural, span, confirmAction,
    reportHealth, currentView, showView, drawChart } = window.Kue;
  const POLL_MS = Math.max(1000, Number(document.body.dataset.poll) || 1000);
  let timer = null;
  let generation = 0;

  // Rows keyed by an id, patched in place like the job list.
  function syncRows(tbody, items, keyOf, build, update) {
    const existing = new Map([...tbody.children].map((tr) => [tr.dataset.key, tr]));
    items.forEach((item, index) => {
      const key = keyOf(item);
      let tr = existing.get(key);
      if (!tr) { tr = build(item); tr.dataset.key = key; }
      update(tr, item);
      if (tbody.children[index] !== tr) tbody.insertBefore(tr, tbody.children[index] || null);
      existing.delete(key);
    });
    for (const tr of existing.values()) tr.remove();
  }

  function cells(count) {
    const tr = el("tr");
    for (let i = 0; i < count; i++) tr.appendChild(el("td"));
    return tr;
  }

  // --- workers ---------------------------------------------------------------------------------
  async function showWorkers() {
    const workers = await api("workers");
    syncRows($("workers-body"), workers, (w) => w.id, () => cells(7), (tr, w) => {
      const td = tr.children;
      setText(td[0], w.id);
      setText(td[1], w.host);
      setText(td[2], w.pid);
      setText(td[3], (w.types || []).join(", "));
      setText(td[4], w.busy + " / " + w.slots);
      td[4].className = w.busy >= w.slots && w.slots > 0 ? "full" : "";
      setText(td[5], ago(w.started_at));
      td[5].title = when(w.started_at);
      setText(td[6], ago(w.heartbeat_at));
      td[6].title = when(w.heartbeat_at);
    });
    $("workers-empty").hidden = workers.length > 0;
    $("workers-table").hidden = workers.length === 0;
    const busy = workers.reduce((n, w) => n + w.busy, 0);
    const slots = workers.reduce((n, w) => n + w.slots, 0);
    setText($("workers-summary"), plural(workers.length, "worker") + ", " + busy + " of " + slots + " slots busy");
  }

  // --- activity charts -------------------------------------------------------------------------
  async function showActivity() {
    const minutes = await api("stats/activity?minutes=60");
    const times = minutes.map((m) => m.minute);
    const pick = (key) => minutes.map((m) => m[key]);
    drawChart($("chart-throughput"), { times, stacked: true, format: (v) => String(Math.round(v)),
      series: [{ key: "completed", kind: "bar", values: pick("completed") },
               { key: "failed", kind: "bar", values: pick("failed") }] });
    drawChart($("chart-latency"), { times, format: (v) => (v ? duration(v) : "0"),
      series: [{ key: "wait", kind: "line", values: pick("wait_ms_avg") },
               { key: "run", kind: "line", values: pick("run_ms_avg") }] });
    const done = minutes.reduce((n, m) => n + m.completed, 0);
    const failed = minutes.reduce((n, m) => n + m.failed, 0);
    setText($("activity-summary"), done + " completed, " + failed + " failed in the last hour");
  }

  // --- repeats ---------------------------------------------------------------------------------
  function schedule(repeat) {
    if (repeat.every) return "every " + span(Math.round(repeat.every / 1000));
    return "cron " + repeat.cron + (repeat.tz && repeat.tz !== "UTC" ? " (" + repeat.tz + ")" : " (UTC)");
  }

  function removeRepeat(name) {
    confirmAction("Stop repeatable job " + name + "? No more jobs are created for it; jobs it already created stay.",
      "Stop repeat", true).then(async (ok) => {
      if (!ok) return;
      try {
        await api("repeats/" + enc(name), "DELETE");
        toast("repeat " + name + " removed");
      } catch (error) {
        toast(error.message, true);
      }
      refresh();
    });
  }

  async function showRepeats() {
    const repeats = await api("repeats");
    syncRows($("repeats-body"), repeats, (r) => r.name, (r) => {
      const tr = cells(6);
      const button = el("button", "button danger small", "Remove");
      button.type = "button";
      button.addEventListener("click", () => removeRepeat(tr.dataset.key));
      tr.children[5].appendChild(button);
      return tr;
    }, (tr, r) => {
      const td = tr.children;
      setText(td[0], r.name);
      setText(td[1], r.type);
      setText(td[2], schedule(r));
      setText(td[3], r.next_at ? ago(r.next_at) : "none");
      td[3].title = when(r.next_at);
      setText(td[4], r.last_at ? ago(r.last_at) : "not yet");
      td[4].title = when(r.last_at);
    });
    $("repeats-empty").hidden = repeats.length > 0;
    $("repeats-table").hidden = repeats.length === 0;
    setText($("repeats-summary"), plural(repeats.length, "repeat"));
  }

  // The form: POST repeats with queue.repeat's arguments; the server checks them (a bad cron
  // or time zone answers 400, shown as a toast).
  async function addRepeat(event) {
    event.preventDefault();
    const spec = { type: $("r-type").value.trim(), tz: $("r-tz").value.trim() || "UTC" };
    const value = $("r-when").value.trim();
    if ($("r-kind").value === "every") spec.every = Math.round(Number(value) * 1000);
    else spec.cron = value;
    if ($("r-name").value.trim()) spec.name = $("r-name").value.trim();
    if ($("r-data").value.trim()) {
      try { spec.data = JSON.parse($("r-data").value); } catch (e) { toast("data is not JSON: " + e.message, true); return; }
    }
    try {
      const added = await api("repeats", "POST", spec);
      toast("repeat " + added.name + " saved");
      $("repeat-form").reset();
    } catch (error) {
      toast(error.message, true);
    }
    refresh();
  }

  const SHOW = { workers: showWorkers, activity: showActivity, repeats: showRepeats };

  async function refresh() {
    clearTimeout(timer);
    const name = currentView();
    const show = SHOW[name];
    if (!show) return;
    const mine = ++generation;
    try {
      await show();
      reportHealth(null);
    } catch (error) {
      reportHealth(error);
    }
    if (mine === generation && currentView() === name) {
      timer = setTimeout(refresh, document.hidden ? POLL_MS * 5 : Math.max(POLL_MS, 2000));
    }
  }

  for (const link of document.querySelectorAll(".view-link")) {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      showView(link.dataset.view);
    });
  }
  $("repeat-form").addEventListener("submit", addRepeat);
  $("r-kind").addEventListener("change", () => {
    $("r-when").placeholder = $("r-kind").value === "every" ? "3600" : "*/5 * * * *";
  });
  document.addEventListener("kue:view", refresh);
  window.addEventListener("resize", () => { if (currentView() === "activity") refresh(); });
  refresh();
})();
