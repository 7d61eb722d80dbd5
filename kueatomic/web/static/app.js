// kueatomic dashboard: vanilla JavaScript, no build step, no third-party code.
// It polls Kue's JSON API (relative URLs, so the app can be mounted under any prefix) and
// patches the page in place, keyed by job id, so nothing flickers while jobs move.
// Job data is only ever inserted with textContent: markup in job data stays text.
"use strict";

(function () {
  const STATES = ["inactive", "active", "failed", "complete", "delayed"];
  const STATE_LABELS = { inactive: "Queued", active: "Active", failed: "Failed", complete: "Complete", delayed: "Delayed" };
  const COUNT_LABELS = { inactive: "queued", active: "active", failed: "failed", complete: "complete", delayed: "delayed" };
  const CANCELLABLE = ["inactive", "delayed", "active"];
  const PRIORITIES = { critical: -15, high: -10, medium: -5, normal: 0, low: 10 };
  const PAGE = 20;
  const SEARCH_LIMIT = 50; // each match is one GET /job/:id per poll

  const body = document.body;
  const POLL_MS = Math.max(250, Number(body.dataset.poll) || 1000);
  const SEARCH_ON = body.dataset.search === "on";
  const { $, enc, api, el, setText, toast, pretty, ms, ago, duration, when, plural,
    confirmAction, reportHealth, currentView, showView } = window.Kue;

  const params = new URLSearchParams(location.search);
  const view = {
    state: STATES.includes(body.dataset.state) ? body.dataset.state : "active",
    type: params.get("type") || "",
    order: params.get("sort") === "desc" ? "desc" : "asc",
    query: SEARCH_ON ? (params.get("q") || "") : "",
    loaded: PAGE,
    selected: params.get("job") || null,
  };
  const rows = new Map(); // job id (string) -> <li>
  let stats = null;
  let typeStats = {};
  let paused = new Set(); // types no worker starts jobs of (GET types/paused)
  let generation = 0; // bumps whenever the view changes, so stale answers are dropped
  let polling = false;
  let timer = null;

  // --- formatting --------------------------------------------------------------------------
  function priorityLabel(value) {
    for (const [name, number] of Object.entries(PRIORITIES)) if (number === value) return name + " (" + value + ")";
    return "priority " + value;
  }
  function titleOf(job) {
    const data = job.data;
    if (data && typeof data === "object" && !Array.isArray(data) && data.title !== undefined && data.title !== null) {
      return typeof data.title === "string" ? data.title : pretty(data.title);
    }
    return "";
  }
  function firstLine(text) {
    const line = String(text || "").split("\n").find((l) => l.trim()) || "";
    return line.length > 200 ? line.slice(0, 200) + "…" : line;
  }
  function percent(job) { return Math.max(0, Math.min(100, Number(job.progress) || 0)); }

  // --- counts ------------------------------------------------------------------------------
  function renderCounts() {
    for (const state of STATES) {
      const node = document.querySelector('[data-count="' + state + '"]');
      setText(node, stats ? stats[state + "Count"] : "–");
    }
    if (stats && stats.workTime !== null && stats.workTime !== undefined) {
      setText($("work-time"), "work time " + duration(stats.workTime));
    }
    renderTypes();
  }

  // Each type: its name, a paused badge and toggle, and its counts labelled by state name (a
  // state without jobs is left out, so the line stays short).
  function renderTypes() {
    // A paused type is listed even before it has jobs, so it can be resumed.
    const names = [...new Set([...Object.keys(typeStats), ...paused])].sort();
    $("no-types").hidden = names.length > 0;
    const list = $("type-list");
    const existing = new Map([...list.children].map((li) => [li.dataset.type, li]));
    names.forEach((name, index) => {
      let li = existing.get(name);
      if (!li) {
        li = el("li");
        li.dataset.type = name;
        const button = el("button", "type-select");
        button.type = "button";
        const head = el("span", "type-head");
        head.appendChild(el("span", "type-name", name));
        head.appendChild(el("span", "paused-badge", "paused"));
        button.appendChild(head);
        const counts = el("span", "type-counts");
        for (const state of STATES) {
          const item = el("span", "count-" + state);
          item.dataset.state = state;
          item.appendChild(el("i", "c-" + state));
          item.appendChild(el("b", "", "0"));
          item.appendChild(el("span", "label", " " + COUNT_LABELS[state]));
          counts.appendChild(item);
        }
        button.appendChild(counts);
        button.addEventListener("click", () => setType(view.type === name ? "" : name));
        li.appendChild(button);
        const toggle = el("button", "pause-toggle");
        toggle.type = "button";
        toggle.addEventListener("click", () => togglePause(name));
        li.appendChild(toggle);
      }
      if (list.children[index] !== li) list.insertBefore(li, list.children[index] || null);
      li.firstChild.classList.toggle("selected", view.type === name);
      const isPaused = paused.has(name);
      li.classList.toggle("paused", isPaused);
      const toggle = li.querySelector(".pause-toggle");
      setText(toggle, isPaused ? "Resume" : "Pause");
      toggle.title = (isPaused ? "Let workers start " : "Stop every worker from starting ") + name + " jobs";
      let any = false;
      for (const item of li.querySelectorAll(".type-counts > span")) {
        const count = (typeStats[name] || {})[item.dataset.state] || 0;
        item.hidden = count === 0;
        any = any || count > 0;
        setText(item.querySelector("b"), count);
      }
      li.querySelector(".type-counts").classList.toggle("none", !any);
      existing.delete(name);
    });
    for (const li of existing.values()) li.remove();
    // The type filter's options follow the known types, keeping the current choice.
    const select = $("type-filter");
    const wanted = ["", ...names];
    if (view.type && !wanted.includes(view.type)) wanted.push(view.type);
    const have = [...select.options].map((o) => o.value);
    if (have.join("\u0000") !== wanted.join("\u0000")) {
      select.replaceChildren(...wanted.map((name) => {
        const option = el("option", "", name || "all types");
        option.value = name;
        return option;
      }));
    }
    select.value = view.type;
    renderBulk();
  }

  function togglePause(name) {
    const pausing = !paused.has(name);
    const text = pausing
      ? "Pause type " + name + " for every worker? Running jobs finish; no new " + name + " job starts until you resume it."
      : "Resume type " + name + "? Workers start its queued jobs again.";
    act(text, pausing ? "Pause" : "Resume", pausing,
      () => api("types/" + enc(name) + (pausing ? "/pause" : "/resume"), "POST"),
      (answer) => {
        if (answer.paused) paused.add(name); else paused.delete(name);
        renderTypes();
        return name + (answer.paused ? " paused" : " resumed");
      });
  }

  // --- bulk actions on the list in view ----------------------------------------------------
  const AGES = [["0", "any age"], ["3600000", "1 hour"], ["86400000", "1 day"], ["604800000", "7 days"], ["2592000000", "30 days"]];

  function renderBulk() {
    const failed = view.state === "failed";
    const cleanable = view.state === "complete" || failed;
    const bar = $("bulk");
    bar.hidden = !!view.query || !cleanable;
    if (bar.hidden) return;
    const total = totalInView();
    const scope = view.type ? " " + view.type : "";
    $("retry-failed").hidden = !failed;
    setText($("retry-failed"), "Retry all" + scope + " failed");
    $("retry-failed").disabled = total === 0;
    setText($("clean-label"), failed ? "Remove failed older than" : "Remove completed older than");
    $("clean-run").disabled = total === 0;
  }

  function retryFailed() {
    const total = totalInView();
    const what = plural(total, (view.type ? view.type + " " : "") + "failed job");
    const limit = Math.max(1, total);
    act("Retry " + what + "? " + (total === 1 ? "It goes" : "They go") + " back to the queue (inactive) with their attempts reset.",
      "Retry " + total, false,
      () => api("jobs/failed/retry", "POST", view.type ? { type: view.type, limit } : { limit }),
      (answer) => { resetList(); return "retried " + plural(answer.retried, "job"); });
  }

  function cleanOld() {
    const state = view.state;
    const age = Number($("clean-age").value);
    const label = $("clean-age").selectedOptions[0].textContent;
    const total = totalInView();
    const what = (view.type ? view.type + " " : "") + (state === "complete" ? "completed" : "failed") + " jobs";
    const text = "Remove " + what + (age ? " that ended more than " + label + " ago" : " of any age") +
      " (" + (age ? "up to " : "") + total + ")? Their data and logs are deleted.";
    const request = { state, older_than_ms: age, limit: Math.max(1, total) };
    if (view.type) request.type = view.type;
    act(text, "Remove", true, () => api("jobs/clean", "POST", request),
      (answer) => { resetList(); return "removed " + plural(answer.removed, "job"); });
  }

  // --- the job list ------------------------------------------------------------------------
  function totalInView() {
    if (!stats) return 0;
    if (view.type) return (typeStats[view.type] || {})[view.state] || 0;
    return stats[view.state + "Count"] || 0;
  }

  function rangePath() {
    // asc reads ranks 0..n-1 (next to run first); desc reads the last n ranks, so "newest"
    // jobs of one priority come first. Kue sorts each slice by id (docs/redis-layout.md §3).
    const from = view.order === "asc" ? 0 : -view.loaded;
    const to = view.order === "asc" ? view.loaded - 1 : -1;
    const base = view.type ? "jobs/" + enc(view.type) + "/" + view.state : "jobs/" + view.state;
    return base + "/" + from + ".." + to + "/" + view.order;
  }

  async function fetchJobs() {
    if (!view.query) return api(rangePath());
    const ids = (await api("job/search?q=" + enc(view.query))).slice(0, SEARCH_LIMIT);
    const jobs = await Promise.all(ids.map((id) => api("job/" + enc(id)).catch(() => null)));
    return jobs.filter((job) => job && (!view.type || job.type === view.type));
  }

  function buildRow(id) {
    const li = el("li", "job");
    li.dataset.id = id;
    li.tabIndex = 0;
    li.appendChild(el("span", "id", "#" + id));
    const main = el("div", "main-col");
    main.appendChild(el("span", "title"));
    const meta = el("div", "meta");
    meta.appendChild(el("span", "type-tag"));
    meta.appendChild(el("span", "chip priority"));
    meta.appendChild(el("span", "chip state-chip"));
    meta.appendChild(el("span", "attempts"));
    main.appendChild(meta);
    main.appendChild(el("span", "error-line"));
    li.appendChild(main);
    const progressCol = el("div", "progress-col");
    const bar = el("div", "progress");
    bar.appendChild(el("div", "bar"));
    progressCol.appendChild(bar);
    progressCol.appendChild(el("div", "pct-text"));
    li.appendChild(progressCol);
    li.appendChild(el("span", "when"));
    li.addEventListener("click", () => select(id));
    li.addEventListener("keydown", (event) => { if (event.key === "Enter") select(id); });
    return li;
  }

  function updateRow(li, job) {
    const state = job.state || "";
    const cls = "job s-" + state + (String(job.id) === view.selected ? " selected" : "");
    if (li.className !== cls) li.className = cls;
    setText(li.querySelector(".title"), titleOf(job) || job.type + " job");
    setText(li.querySelector(".type-tag"), job.type);
    setText(li.querySelector(".chip.priority"), priorityLabel(job.priority));
    const chip = li.querySelector(".state-chip");
    chip.hidden = !view.query && state === view.state;
    setText(chip, STATE_LABELS[state] || state);
    chip.className = "chip state-chip s-" + state;
    const attempts = job.attempts || {};
    setText(li.querySelector(".attempts"), "attempts " + (attempts.made || 0) + "/" + (attempts.max || 1));
    // A failed job shows as failed (a red bar, "failed"), with its error's first line.
    const failed = state === "failed";
    const errorLine = li.querySelector(".error-line");
    errorLine.hidden = !job.error;
    setText(errorLine, firstLine(job.error));
    errorLine.title = job.error || "";
    const pct = failed ? 100 : percent(job);
    const bar = li.querySelector(".bar");
    if (bar.style.width !== pct + "%") bar.style.width = pct + "%";
    setText(li.querySelector(".pct-text"), failed ? "failed" : pct + "%");
    const node = li.querySelector(".when");
    setText(node, ago(job.updated_at || job.created_at));
    node.title = when(job.updated_at || job.created_at);
  }

  function renderList(jobs) {
    const list = $("job-list");
    const seen = new Set();
    jobs.forEach((job, index) => {
      const id = String(job.id);
      seen.add(id);
      let li = rows.get(id);
      if (!li) { li = buildRow(id); rows.set(id, li); }
      updateRow(li, job);
      if (list.children[index] !== li) list.insertBefore(li, list.children[index] || null);
    });
    for (const [id, li] of rows) {
      if (!seen.has(id)) { li.remove(); rows.delete(id); }
    }
    $("empty").hidden = jobs.length > 0;
    const total = view.query ? jobs.length : totalInView();
    const label = view.query ? "Search: " + view.query : STATE_LABELS[view.state] + (view.type ? " · " + view.type : "");
    setText($("list-title"), label);
    setText($("list-summary"), view.query ? jobs.length + " match" + (jobs.length === 1 ? "" : "es")
      : "showing " + Math.min(jobs.length, total) + " of " + total);
    $("more").hidden = !!view.query || jobs.length >= total || jobs.length < view.loaded;
  }

  // --- the job card ------------------------------------------------------------------------
  function field(pairs, name, value) {
    if (value === "" || value === undefined || value === null) return;
    pairs.push([name, String(value)]);
  }

  function renderDetail(job, log) {
    const panel = $("detail");
    const switched = panel.dataset.id !== String(job.id);
    panel.hidden = false;
    panel.dataset.id = String(job.id);
    $("d-progress-bar").classList.toggle("instant", switched); // animate progress, not a switch
    panel.dataset.state = job.state || "";
    document.querySelector(".content").classList.add("with-detail");
    setText($("d-id"), "#" + job.id);
    setText($("d-type"), job.type);
    setText($("d-title"), titleOf(job));
    $("d-title").hidden = !titleOf(job);
    const state = job.state || "";
    setText($("d-state"), STATE_LABELS[state] || state);
    $("d-state").className = "chip s-" + state;
    setText($("d-priority"), priorityLabel(job.priority));
    const failed = state === "failed";
    $("d-progress-box").classList.toggle("failed", failed);
    const pct = failed ? 100 : percent(job);
    $("d-progress-bar").style.width = pct + "%";
    setText($("d-progress"), failed ? "failed: " + firstLine(job.error) : pct + "%");
    $("a-cancel").hidden = !CANCELLABLE.includes(state);
    const named = Object.keys(PRIORITIES).find((name) => PRIORITIES[name] === job.priority);
    const chooser = $("a-priority-value");
    if (document.activeElement !== chooser && chooser.dataset.job !== String(job.id)) {
      chooser.value = named || "normal";
      chooser.dataset.job = String(job.id);
    }
    const attempts = job.attempts || {};
    const fields = [];
    field(fields, "Attempts", (attempts.made || 0) + " made, " + attempts.remaining + " remaining, max " + attempts.max);
    field(fields, "Created", when(job.created_at));
    field(fields, "Updated", when(job.updated_at));
    field(fields, "Started", when(job.started_at));
    field(fields, "Promote at", job.state === "delayed" ? when(job.promote_at) : "");
    field(fields, "Failed at", when(job.failed_at));
    field(fields, "Duration", duration(job.duration));
    field(fields, "Delay", duration(job.delay));
    field(fields, "TTL", duration(job.ttl));
    field(fields, "Worker", job.workerId);
    field(fields, "Unique key", job.unique_key);
    const list = $("d-fields");
    const names = JSON.stringify(fields.map((pair) => pair[0]));
    if (list.dataset.names !== names) {
      list.dataset.names = names;
      list.replaceChildren(...fields.flatMap(([name, value]) => [el("dt", "", name), el("dd", "", value)]));
    } else {
      fields.forEach((pair, index) => setText(list.children[2 * index + 1], pair[1]));
    }
    renderLinks($("d-depends-box"), $("d-depends"), job.depends_on);
    renderLinks($("d-dependents-box"), $("d-dependents"), job.dependents);
    $("d-error-box").hidden = !job.error;
    setText($("d-error"), job.error);
    $("d-result-box").hidden = job.result === undefined;
    setText($("d-result"), job.result === undefined ? "" : pretty(job.result));
    setText($("d-data"), pretty(job.data));
    $("d-progress-data-box").hidden = job.progress_data === undefined || job.progress_data === null;
    setText($("d-progress-data"), job.progress_data === undefined ? "" : pretty(job.progress_data));
    renderLog(log);
  }

  // Dependencies (depends_on: the jobs this one waits for; dependents: those waiting for it)
  // as links that open those jobs' cards.
  function renderLinks(box, list, ids) {
    const wanted = (ids || []).map(String);
    box.hidden = wanted.length === 0;
    if (list.dataset.ids === wanted.join(",")) return;
    list.dataset.ids = wanted.join(",");
    list.replaceChildren(...wanted.map((id) => {
      const li = el("li");
      const link = el("a", "job-link", "#" + id);
      link.href = view.state + "?job=" + enc(id);
      link.dataset.job = id;
      link.addEventListener("click", (event) => { event.preventDefault(); select(id); });
      li.appendChild(link);
      return li;
    }));
  }

  function renderLog(lines) {
    const list = $("d-log");
    setText($("d-log-count"), lines.length ? "(" + lines.length + ")" : "");
    while (list.children.length > lines.length) list.lastChild.remove();
    lines.forEach((line, index) => {
      const li = list.children[index] || list.appendChild(el("li"));
      setText(li, line);
    });
  }

  function closeDetail() {
    view.selected = null;
    $("detail").hidden = true;
    document.querySelector(".content").classList.remove("with-detail");
    for (const li of rows.values()) li.classList.remove("selected");
    saveUrl();
  }

  async function refreshDetail() {
    const id = view.selected;
    if (!id) return;
    try {
      const [job, log] = await Promise.all([api("job/" + enc(id)), api("job/" + enc(id) + "/log")]);
      if (view.selected === id) renderDetail(job, log);
    } catch (error) {
      if (error.status === 404 && view.selected === id) {
        closeDetail();
        toast("job " + id + " no longer exists");
      } else {
        throw error;
      }
    }
  }

  function select(id) {
    view.selected = String(id);
    for (const [key, li] of rows) li.classList.toggle("selected", key === view.selected);
    saveUrl();
    refreshDetail().catch((error) => toast(error.message, true));
  }

  // --- actions: confirmed, then shown at once ------------------------------------------------
  async function act(text, okLabel, danger, run, done) {
    if (!(await confirmAction(text, okLabel, danger))) return;
    try {
      const answer = await run();
      generation += 1; // an answer already in flight predates the action: drop it
      const said = done(answer);
      toast(typeof said === "string" ? said : answer && answer.message ? answer.message : "done");
    } catch (error) {
      toast(error.message, true);
    }
    poll();
  }

  function removeJob() {
    const id = view.selected;
    act("Remove job #" + id + "? Its data and log are deleted.", "Remove", true,
      () => api("job/" + enc(id), "DELETE"),
      () => {
        const li = rows.get(id);
        if (li) { li.remove(); rows.delete(id); }
        if (stats && $("detail").dataset.state) stats[$("detail").dataset.state + "Count"] -= 1;
        closeDetail();
        renderCounts();
      });
  }

  function restartJob() {
    const id = view.selected;
    act("Restart job #" + id + "? It goes back to the queue (inactive).", "Restart", false,
      () => api("job/" + enc(id) + "/state/inactive", "PUT"),  // not Kue's GET inactive/:id: a change is never a GET
      () => {
        setText($("d-state"), STATE_LABELS.inactive);
        $("d-state").className = "chip s-inactive";
        const li = rows.get(id);
        if (li && view.state !== "inactive" && !view.query) { li.remove(); rows.delete(id); }
      });
  }

  function cancelJob() {
    const id = view.selected;
    act("Cancel job #" + id + "? It ends failed (\"Cancelled\") and is not retried; a running handler is told to stop.",
      "Cancel job", true,
      () => api("job/" + enc(id) + "/cancel", "POST"),
      (answer) => {
        setText($("d-state"), STATE_LABELS[answer.state] || answer.state);
        $("d-state").className = "chip s-" + answer.state;
        $("a-cancel").hidden = true;
      });
  }

  function changePriority() {
    const id = view.selected;
    const name = $("a-priority-value").value;
    act("Set the priority of job #" + id + " to " + name + " (" + PRIORITIES[name] + ")?", "Set priority", false,
      () => api("job/" + enc(id) + "/priority/" + enc(name), "PUT"),
      () => {
        const label = priorityLabel(PRIORITIES[name]);
        setText($("d-priority"), label);
        const li = rows.get(id);
        if (li) setText(li.querySelector(".chip.priority"), label);
      });
  }

  // --- view changes ------------------------------------------------------------------------
  function saveUrl() {
    const query = new URLSearchParams();
    if (view.type) query.set("type", view.type);
    if (view.order !== "asc") query.set("sort", view.order);
    if (view.query) query.set("q", view.query);
    if (view.selected) query.set("job", view.selected);
    if (currentView() !== "jobs") query.set("view", currentView());
    const search = query.toString();
    history.replaceState(null, "", view.state + (search ? "?" + search : ""));
  }

  function resetList() {
    generation += 1;
    view.loaded = PAGE;
    for (const li of rows.values()) li.remove();
    rows.clear();
    saveUrl();
    poll();
  }

  function setState(state) {
    view.state = state;
    if (currentView() !== "jobs") showView("jobs");
    for (const link of document.querySelectorAll(".state")) {
      link.classList.toggle("selected", link.dataset.state === state);
    }
    resetList();
  }

  function setType(name) {
    view.type = name;
    renderTypes();
    resetList();
  }

  // --- polling -------------------------------------------------------------------------------
  async function poll() {
    clearTimeout(timer);
    if (polling) { timer = setTimeout(poll, 50); return; }
    polling = true;
    const mine = generation;
    try {
      let pausedList;
      [stats, typeStats, pausedList] = await Promise.all([api("stats"), api("stats/types"), api("types/paused")]);
      paused = new Set(pausedList);
      renderCounts();
      if (currentView() === "jobs") {
        const jobs = await fetchJobs();
        if (mine === generation) renderList(jobs);
        await refreshDetail();
      }
      reportHealth(null);
    } catch (error) {
      reportHealth(error);
    } finally {
      polling = false;
      timer = setTimeout(poll, document.hidden ? POLL_MS * 5 : POLL_MS);
    }
  }

  function loadMore() {
    if (view.query || view.loaded > totalInView()) return;
    view.loaded += PAGE;
    poll();
  }

  function wire() {
    for (const link of document.querySelectorAll(".state")) {
      link.addEventListener("click", (event) => {
        event.preventDefault();
        setState(link.dataset.state);
      });
    }
    $("type-filter").addEventListener("change", (event) => setType(event.target.value));
    $("sort").value = view.order;
    $("sort").addEventListener("change", (event) => { view.order = event.target.value; resetList(); });
    const search = $("search");
    if (SEARCH_ON) {
      search.value = view.query;
      let pending = null;
      search.addEventListener("input", () => {
        clearTimeout(pending);
        pending = setTimeout(() => { view.query = search.value.trim(); resetList(); }, 250);
      });
    } else {
      search.disabled = true;
      search.placeholder = "Search";
      search.title = "Start the dashboard with --search (or disable_search=False) to search job data";
      $("search-off").hidden = false;
    }
    $("more").addEventListener("click", loadMore);
    if ("IntersectionObserver" in window) {
      new IntersectionObserver((entries) => {
        if (entries.some((entry) => entry.isIntersecting) && !$("more").hidden) loadMore();
      }).observe($("list-end"));
    }
    $("d-close").addEventListener("click", closeDetail);
    $("a-remove").addEventListener("click", removeJob);
    $("a-restart").addEventListener("click", restartJob);
    $("a-priority").addEventListener("click", changePriority);
    $("a-cancel").addEventListener("click", cancelJob);
    $("retry-failed").addEventListener("click", retryFailed);
    $("clean-run").addEventListener("click", cleanOld);
    $("clean-age").replaceChildren(...AGES.map(([value, label]) => {
      const option = el("option", "", label);
      option.value = value;
      return option;
    }));
    $("clean-age").value = "86400000";
    document.addEventListener("kue:view", (event) => {
      saveUrl();
      if (event.detail === "jobs") poll();
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !$("confirm").open && view.selected) closeDetail();
    });
    document.addEventListener("visibilitychange", () => { if (!document.hidden) poll(); });
  }

  wire();
  const startView = params.get("view") || "jobs";
  setState(view.state);
  if (startView !== "jobs") showView(startView);
  if (view.selected) select(view.selected);
})();
