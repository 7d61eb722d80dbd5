// kueatomic dashboard: vanilla JavaScript, no build step, no third-party code.
// It polls Kue's JSON API (relative URLs, so the app can be mounted under any prefix) and
// patches the page in place, keyed by job id, so nothing flickers while jobs move.
// Job data is only ever inserted with textContent: markup in job data stays text.
"use strict";

(function () {
  const STATES = ["inactive", "active", "failed", "complete", "delayed"];
  const STATE_LABELS = { inactive: "Queued", active: "Active", failed: "Failed", complete: "Complete", delayed: "Delayed" };
  const PRIORITIES = { critical: -15, high: -10, medium: -5, normal: 0, low: 10 };
  const PAGE = 20;
  const SEARCH_LIMIT = 50; // each match is one GET /job/:id per poll

  const body = document.body;
  const POLL_MS = Math.max(250, Number(body.dataset.poll) || 1000);
  const SEARCH_ON = body.dataset.search === "on";
  const $ = (id) => document.getElementById(id);

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
  let generation = 0; // bumps whenever the view changes, so stale answers are dropped
  let polling = false;
  let timer = null;

  // --- HTTP --------------------------------------------------------------------------------
  async function api(path, method) {
    const response = await fetch(path, { method: method || "GET", headers: { Accept: "application/json" }, cache: "no-store" });
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
  const enc = encodeURIComponent;

  // --- small DOM helpers (text only) -------------------------------------------------------
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
  function ms(value) { const n = Number(value); return Number.isFinite(n) && value !== "" ? n : null; }
  function ago(value) {
    const t = ms(value);
    if (t === null) return "";
    const s = Math.round((Date.now() - t) / 1000);
    if (s < -1) return "in " + span(-s);
    if (s < 2) return "just now";
    return span(s) + " ago";
  }
  function span(seconds) {
    if (seconds < 60) return seconds + "s";
    if (seconds < 3600) return Math.floor(seconds / 60) + "m " + (seconds % 60) + "s";
    if (seconds < 86400) return Math.floor(seconds / 3600) + "h " + Math.floor((seconds % 3600) / 60) + "m";
    return Math.floor(seconds / 86400) + "d " + Math.floor((seconds % 86400) / 3600) + "h";
  }
  function duration(value) {
    const n = ms(value);
    if (n === null) return "";
    if (n < 1000) return n + " ms";
    if (n < 60000) return (n / 1000).toFixed(n < 10000 ? 2 : 1) + " s";
    return span(Math.round(n / 1000));
  }
  function when(value) {
    const t = ms(value);
    return t === null ? "" : new Date(t).toLocaleString() + " (" + ago(value) + ")";
  }
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

  function renderTypes() {
    const names = Object.keys(typeStats).sort();
    $("no-types").hidden = names.length > 0;
    const list = $("type-list");
    const existing = new Map([...list.children].map((li) => [li.dataset.type, li]));
    names.forEach((name, index) => {
      let li = existing.get(name);
      if (!li) {
        li = el("li");
        li.dataset.type = name;
        const button = el("button");
        button.type = "button";
        button.appendChild(el("span", "type-name", name));
        const counts = el("span", "type-counts");
        for (const state of STATES) {
          const item = el("span");
          item.title = STATE_LABELS[state];
          item.appendChild(el("i", "c-" + state));
          item.appendChild(el("b", "", "0"));
          item.dataset.state = state;
          counts.appendChild(item);
        }
        button.appendChild(counts);
        button.addEventListener("click", () => setType(view.type === name ? "" : name));
        li.appendChild(button);
      }
      if (list.children[index] !== li) list.insertBefore(li, list.children[index] || null);
      li.firstChild.classList.toggle("selected", view.type === name);
      for (const item of li.querySelectorAll(".type-counts > span")) {
        setText(item.lastChild, typeStats[name][item.dataset.state]);
      }
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
    const pct = percent(job);
    const bar = li.querySelector(".bar");
    if (bar.style.width !== pct + "%") bar.style.width = pct + "%";
    setText(li.querySelector(".pct-text"), pct + "%");
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
    const pct = percent(job);
    $("d-progress-bar").style.width = pct + "%";
    setText($("d-progress"), pct + "%");
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
    const list = $("d-fields");
    const names = JSON.stringify(fields.map((pair) => pair[0]));
    if (list.dataset.names !== names) {
      list.dataset.names = names;
      list.replaceChildren(...fields.flatMap(([name, value]) => [el("dt", "", name), el("dd", "", value)]));
    } else {
      fields.forEach((pair, index) => setText(list.children[2 * index + 1], pair[1]));
    }
    $("d-error-box").hidden = !job.error;
    setText($("d-error"), job.error);
    $("d-result-box").hidden = job.result === undefined;
    setText($("d-result"), job.result === undefined ? "" : pretty(job.result));
    setText($("d-data"), pretty(job.data));
    $("d-progress-data-box").hidden = job.progress_data === undefined || job.progress_data === null;
    setText($("d-progress-data"), job.progress_data === undefined ? "" : pretty(job.progress_data));
    renderLog(log);
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

  async function act(text, okLabel, danger, run, done) {
    if (!(await confirmAction(text, okLabel, danger))) return;
    try {
      const answer = await run();
      generation += 1; // an answer already in flight predates the action: drop it
      done();
      toast(answer && answer.message ? answer.message : "done");
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
  function setLive(ok, text) {
    const node = $("live");
    node.className = "live " + (ok ? "ok" : "down");
    setText(node, text);
  }

  async function poll() {
    clearTimeout(timer);
    if (polling) { timer = setTimeout(poll, 50); return; }
    polling = true;
    const mine = generation;
    try {
      [stats, typeStats] = await Promise.all([api("stats"), api("stats/types")]);
      renderCounts();
      const jobs = await fetchJobs();
      if (mine === generation) renderList(jobs);
      await refreshDetail();
      setLive(true, document.hidden ? "paused" : "live");
    } catch (error) {
      setLive(false, "cannot reach the server: " + error.message);
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
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !$("confirm").open && view.selected) closeDetail();
    });
    document.addEventListener("visibilitychange", () => { if (!document.hidden) poll(); });
  }

  wire();
  setState(view.state);
  if (view.selected) select(view.selected);
})();
