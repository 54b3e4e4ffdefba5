// The studio's scripts. Pages are whole without them (server-rendered); these add the theme
// toggle, live run status, metric charts (uPlot), the followed log, MLflow's links, child runs
// expanded in place and live cells in the runs table, and a web service's traffic charts. Data is
// read from the REST API with the session cookie; nothing here writes.
(function () {
  "use strict";
  var A = (window.atelier = window.atelier || { charts: {} });

  // MLflow's "View run" link is <tracking URI>/#/experiments/X/runs/Y: the fragment never
  // reaches the server, so the page at / (or the workspace's MLflow landing page, or the login
  // page they lead to) sends it on to the run's page here.
  (function mlflowLink() {
    var m = location.hash.match(/^#\/experiments\/[^/]+\/runs\/([0-9A-Za-z_-]+)/);
    if (!m) return;
    var ws = "default";
    var wm = location.pathname.match(/^\/(?:workspaces|w)\/([^/]+)/);
    if (wm) ws = decodeURIComponent(wm[1]);
    var target = "/w/" + encodeURIComponent(ws) + "/runs/" + encodeURIComponent(m[1]);
    var next = document.getElementById("login-next");
    if (next) {
      var from = new URLSearchParams(location.search).get("next") || "/";
      var fm = from.match(/^\/(?:workspaces|w)\/([^/]+)/);
      if (fm) target = "/w/" + fm[1] + "/runs/" + encodeURIComponent(m[1]);
      next.value = target;
      history.replaceState(null, "", location.pathname + location.search);
      return;
    }
    location.replace(target);
  })();

  function ready(f) {
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", f);
    else f();
  }

  function theme() {
    var b = document.getElementById("theme-toggle");
    if (!b) return;
    b.addEventListener("click", function () {
      var root = document.documentElement;
      var cur = root.getAttribute("data-theme");
      if (!cur) cur = matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
      var next = cur === "dark" ? "light" : "dark";
      root.setAttribute("data-theme", next);
      try { localStorage.setItem("atelier-theme", next); } catch (e) {}
      document.dispatchEvent(new CustomEvent("atelier:theme"));
    });
  }

  function api(ws, rest) {
    return "/api/v1/workspaces/" + encodeURIComponent(ws) + rest;
  }

  function pathEsc(p) {
    return p.split("/").map(encodeURIComponent).join("/");
  }

  // Live status: the status badges of the runs on the page follow the workspace's events.
  function liveStatus() {
    var rows = document.querySelectorAll("[data-run-id] [data-status], #run [data-status]");
    var wsEl = document.querySelector("[data-workspace]");
    var ws = wsEl ? wsEl.getAttribute("data-workspace") : (location.pathname.match(/^\/w\/([^/]+)/) || [])[1];
    if (!rows.length || !ws || !window.EventSource) return;
    ws = decodeURIComponent(ws);
    var run = document.getElementById("run");
    var url = api(ws, "/events?types=run.status");
    if (run) url = api(ws, "/events?types=run.status,run.metrics&run_id=" + encodeURIComponent(run.getAttribute("data-run")));
    var es = new EventSource(url);
    // Open means subscribed: the server subscribes before it answers.
    es.addEventListener("open", function () {
      A.eventsOpen = true;
      if (run) refreshFacts(); // what changed between the page's rendering and the subscription
    });
    // New points of a running run redraw its charts (not one zoomed in), at most every 2 s.
    var pending = null;
    es.addEventListener("run.metrics", function () {
      if (pending) return;
      pending = setTimeout(function () {
        pending = null;
        Object.keys(A.charts).forEach(function (k) {
          var c = A.charts[k];
          if (c.key !== "compare" && !c.window && c.series) c.load();
        });
      }, 2000);
    });
    es.addEventListener("run.status", function (e) {
      var ev = JSON.parse(e.data), r = ev.data || {};
      var sel = '[data-run-id="' + CSS.escape(ev.run_id) + '"] [data-status]';
      var els = Array.prototype.slice.call(document.querySelectorAll(sel));
      if (run && run.getAttribute("data-run") === ev.run_id) {
        els.push(document.getElementById("run-status"));
        run.setAttribute("data-status", r.status);
        refreshFacts();
        if (/^(Completed|Failed|Canceled|CancelRequested)$/.test(r.status)) {
          var c = document.getElementById("cancel-form");
          if (c) c.remove();
        }
      }
      els.forEach(function (el) {
        if (!el || !r.status) return;
        el.textContent = r.status;
        el.className = el.className.replace(/\bs-\S+/, "s-" + r.status.toLowerCase());
      });
    });
    window.addEventListener("pagehide", function () { es.close(); });
  }

  // refreshFacts reads the run page again for its timeline (started, ended, duration, exit
  // code, error) after a status change.
  function refreshFacts() {
    fetch(location.href, { credentials: "same-origin" }).then(function (r) { return r.ok ? r.text() : null; }).then(function (html) {
      if (!html) return;
      var doc = new DOMParser().parseFromString(html, "text/html");
      var st = doc.getElementById("run-status"), cur = document.getElementById("run-status");
      if (st && cur && st.textContent !== cur.textContent) {
        cur.replaceWith(st);
        document.getElementById("run").setAttribute("data-status", st.textContent);
        if (!doc.getElementById("cancel-form")) {
          var c = document.getElementById("cancel-form");
          if (c) c.remove();
        }
      }
      ["dl.facts", "#run-error"].forEach(function (sel) {
        var now = document.querySelector(sel), next = doc.querySelector(sel);
        if (now && next) now.replaceWith(next);
        else if (!now && next) document.querySelector("dl.facts").after(next);
      });
    });
  }

  // ---- the runs table ----

  // A parent's "N children" link shows its children under its row, in place: the link is the
  // same page of the table with expand=ID (what it opens without JavaScript); here that page is
  // read and only the parent's rows are taken from it. Clicking again hides them.
  function expandRows() {
    document.addEventListener("click", function (e) {
      var a = e.target.closest ? e.target.closest("a.expand") : null;
      if (!a || e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
      var row = a.closest("tr"), id = a.getAttribute("data-parent");
      if (!row || !id) return;
      var sel = 'tr[data-parent="' + CSS.escape(id) + '"]';
      if (a.getAttribute("aria-expanded") === "true") {
        if (!a._collapsed) return; // expanded by the server: its link reads the table again
        e.preventDefault();
        row.parentNode.querySelectorAll(sel).forEach(function (r) { r.remove(); });
        history.replaceState(history.state, "", a.href); // the link to the table without them
        if (a._collapsed) a.replaceWith(a._collapsed);
        return;
      }
      e.preventDefault();
      if (a.getAttribute("aria-busy") === "true") return;
      a.setAttribute("aria-busy", "true");
      fetch(a.href, { credentials: "same-origin" }).then(function (r) {
        if (r.status === 401) { location.reload(); throw new Error("session ended"); }
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      }).then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var next = doc.querySelector('tr[data-run-id="' + CSS.escape(id) + '"] a.expand');
        row.parentNode.querySelectorAll(sel).forEach(function (r) { r.remove(); });
        var after = row;
        doc.querySelectorAll("#runs-table " + sel).forEach(function (r) {
          r = document.importNode(r, true);
          after.after(r);
          after = r;
        });
        if (next) {
          next = document.importNode(next, true);
          next._collapsed = a;
          a.removeAttribute("aria-busy");
          a.replaceWith(next);
        }
        history.replaceState(history.state, "", a.href);
        liveCells.schedule();
        document.dispatchEvent(new CustomEvent("atelier:expanded", { detail: id }));
      }).catch(function (err) {
        a.removeAttribute("aria-busy");
        a.setAttribute("data-error", err.message);
      });
    });
  }

  // liveCells keeps the status, duration and chosen columns of the table's active runs up to
  // date: every few seconds while the page is visible, one bounded request for all of them
  // (at most 100 runs); none once every run shown has ended.
  var liveCells = (function () {
    var timer = null, busy = false;
    A.livePolls = 0;
    function activeIDs() {
      var table = document.getElementById("runs-table");
      if (!table) return null;
      var ids = [];
      table.querySelectorAll("tbody tr[data-run-id]").forEach(function (tr) {
        var st = tr.querySelector("[data-status]"), id = tr.getAttribute("data-run-id");
        if (st && !/^(Completed|Failed|Canceled)$/.test(st.textContent.trim()) && ids.indexOf(id) < 0) ids.push(id);
      });
      return { table: table, ids: ids.slice(0, 100) };
    }
    function schedule() {
      if (timer || busy) return;
      var a = activeIDs();
      A.livePolling = !!(a && a.ids.length);
      if (!A.livePolling) return;
      timer = setTimeout(tick, A.liveInterval || 3000);
    }
    function tick() {
      timer = null;
      var a = activeIDs();
      if (!a || !a.ids.length) { A.livePolling = false; return; }
      if (document.hidden) { schedule(); return; }
      var ws = a.table.getAttribute("data-workspace");
      var q = new URLSearchParams();
      a.ids.forEach(function (id) { q.append("run", id); });
      q.set("cols", a.table.getAttribute("data-cols") || "");
      busy = true;
      A.livePolls++;
      fetch("/w/" + encodeURIComponent(ws) + "/runs/live?" + q.toString(), { credentials: "same-origin" }).then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      }).then(function (d) {
        var table = document.getElementById("runs-table");
        if (!table || table.getAttribute("data-cols") !== q.get("cols")) return; // swapped meanwhile
        (d.runs || []).forEach(function (run) {
          table.querySelectorAll('tr[data-run-id="' + CSS.escape(run.id) + '"]').forEach(function (tr) {
            var st = tr.querySelector("[data-status]");
            if (st && run.status && st.textContent !== run.status) {
              st.textContent = run.status;
              st.className = st.className.replace(/\bs-\S+/, "s-" + run.status.toLowerCase());
            }
            var du = tr.querySelector("[data-duration]");
            if (du && run.duration) du.textContent = run.duration;
            (run.cells || []).forEach(function (v, i) {
              var td = tr.querySelector('td[data-col="' + i + '"]');
              if (td && td.textContent !== v) td.textContent = v;
            });
          });
        });
        document.dispatchEvent(new CustomEvent("atelier:live"));
      }).catch(function () {}).then(function () { busy = false; schedule(); });
    }
    return { schedule: schedule };
  })();

  // ---- charts ----

  function smooth(ys, a) {
    if (!a) return ys;
    var out = new Array(ys.length), last = null;
    for (var i = 0; i < ys.length; i++) {
      var y = ys[i];
      if (y == null || !isFinite(y)) { out[i] = y; continue; }
      last = last == null ? y : a * last + (1 - a) * y;
      out[i] = last;
    }
    return out;
  }

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  var palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#e377c2", "#8c564b"];

  // A chart of one run's metric, or of one metric of several runs (compare). It reads the
  // series downsampled to the plot's width (each bucket keeps its min and max, drawn as a band,
  // so spikes show), and a zoom reads the chosen window again, at full detail once it holds
  // fewer points than the width.
  function Chart(fig, sources, opts) {
    this.fig = fig;
    this.el = fig.querySelector(".plot");
    this.sources = sources; // [{ws, run, name, label}]
    this.opts = opts;
    this.window = null; // [minStep, maxStep] or null for all
    this.data = null;
    this.u = null;
    this.key = opts.key;
    A.charts[this.key] = this;
  }

  Chart.prototype.maxPoints = function () {
    return Math.max(200, Math.min(2000, Math.round((this.el.clientWidth || 600) * 1.5)));
  };

  Chart.prototype.load = function () {
    var self = this, t0 = performance.now();
    var q = "&max_points=" + this.maxPoints();
    if (this.window) q += "&min_step=" + Math.floor(this.window[0]) + "&max_step=" + Math.ceil(this.window[1]);
    return Promise.all(this.sources.map(function (s) {
      return fetch(api(s.ws, "/runs/" + encodeURIComponent(s.run) + "/metric-history?name=" + encodeURIComponent(s.name) + q),
        { credentials: "same-origin" }).then(function (r) {
        if (r.status === 401) { location.reload(); throw new Error("session ended"); }
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      });
    })).then(function (series) {
      self.series = series;
      self.draw();
      self.lastMs = performance.now() - t0;
      self.fig.setAttribute("data-ready", "1");
      self.fig.setAttribute("data-points", String(self.points));
      document.dispatchEvent(new CustomEvent("atelier:chart", { detail: self }));
    }).catch(function (e) {
      self.el.textContent = "The chart could not be read: " + e.message;
      self.fig.setAttribute("data-error", e.message);
    });
  };

  // columns aligns the series on one x axis (their union of steps or times).
  Chart.prototype.columns = function () {
    var byTime = A.xAxis === "time", a = A.smoothing || 0;
    var series = this.series;
    if (series.length === 1) {
      var s = series[0];
      var xs = byTime ? s.timestamps.map(function (t) { return t / 1000; }) : s.steps;
      var cols = [xs, smooth(s.values, a)];
      if (s.downsampled && s.min && s.max) cols.push(s.min, s.max);
      this.points = s.values.length;
      this.steps = s.steps;
      return cols;
    }
    var idx = new Map(), xsAll = [];
    series.forEach(function (s) {
      (byTime ? s.timestamps : s.steps).forEach(function (x) {
        var k = byTime ? x / 1000 : x;
        if (!idx.has(k)) { idx.set(k, 0); xsAll.push(k); }
      });
    });
    xsAll.sort(function (p, q) { return p - q; });
    xsAll.forEach(function (x, i) { idx.set(x, i); });
    var out = [xsAll], n = 0;
    series.forEach(function (s) {
      var ys = new Array(xsAll.length).fill(null);
      var vals = smooth(s.values, a);
      (byTime ? s.timestamps : s.steps).forEach(function (x, i) { ys[idx.get(byTime ? x / 1000 : x)] = vals[i]; });
      out.push(ys);
      n += s.values.length;
    });
    this.points = n;
    this.steps = byTime ? null : xsAll;
    return out;
  };

  Chart.prototype.draw = function () {
    var self = this;
    var data = this.columns();
    var fg = cssVar("--fg") || "#000", grid = cssVar("--line") || "#ddd";
    var axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } };
    var series = [{ label: A.xAxis === "time" ? "time" : "step" }];
    if (this.series.length === 1) {
      series.push({ label: this.sources[0].label, stroke: palette[0], width: 1.5, spanGaps: true, points: { show: false } });
      if (data.length === 4) {
        series.push({ label: "min", stroke: "rgba(31,119,180,0.35)", width: 1, points: { show: false } });
        series.push({ label: "max", stroke: "rgba(31,119,180,0.35)", width: 1, points: { show: false } });
      }
    } else {
      this.sources.forEach(function (s, i) {
        series.push({ label: s.label, stroke: palette[i % palette.length], width: 1.5, spanGaps: true, points: { show: false } });
      });
    }
    var bands = data.length === 4 && this.series.length === 1 ? [{ series: [3, 2], fill: "rgba(31,119,180,0.15)" }] : [];
    var opts = {
      width: this.el.clientWidth || 600,
      height: this.opts.height || 240,
      series: series,
      bands: bands,
      scales: { x: { time: A.xAxis === "time" }, y: { distr: A.logScale ? 3 : 1 } },
      axes: [axis, Object.assign({}, axis, { size: 60 })],
      cursor: { drag: { x: true, y: false, setScale: false } },
      legend: { show: this.series.length > 1 || this.opts.legend === true },
      hooks: {
        setSelect: [function (u) {
          if (u.select.width < 2) return;
          var lo = u.posToVal(u.select.left, "x"), hi = u.posToVal(u.select.left + u.select.width, "x");
          u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          self.zoom(lo, hi);
        }],
      },
    };
    if (this.u) this.u.destroy();
    this.el.textContent = "";
    this.u = new uPlot(opts, data, this.el);
    this.u.over.addEventListener("dblclick", function () { self.window = null; self.load(); });
  };

  // zoom reads the window [lo, hi] of the x axis again, in steps (a time axis is mapped to the
  // steps of the points shown).
  Chart.prototype.zoom = function (lo, hi) {
    var steps;
    if (A.xAxis === "time") {
      var s = this.series[0], i0 = 0, i1 = s.timestamps.length - 1;
      while (i0 < i1 && s.timestamps[i0] / 1000 < lo) i0++;
      while (i1 > i0 && s.timestamps[i1] / 1000 > hi) i1--;
      steps = [s.steps[i0], s.steps[i1]];
    } else {
      steps = [lo, hi];
    }
    this.window = steps;
    this.zoomStart = performance.now();
    var self = this;
    return this.load().then(function () { self.zoomMs = performance.now() - self.zoomStart; });
  };

  function runCharts() {
    var run = document.getElementById("run");
    var figs = document.querySelectorAll("#charts figure.chart");
    if (!run || !figs.length || !window.uPlot) return;
    var ws = run.getAttribute("data-workspace"), id = run.getAttribute("data-run");
    var charts = [];
    figs.forEach(function (fig) {
      var name = fig.getAttribute("data-metric");
      charts.push(new Chart(fig, [{ ws: ws, run: id, name: name, label: name }], { key: name }));
    });
    var t0 = performance.now();
    controls(charts);
    return Promise.all(charts.map(function (c) { return c.load(); })).then(function () {
      A.chartsMs = performance.now() - t0;
      document.body.setAttribute("data-charts-ready", "1");
    });
  }

  function controls(charts) {
    var x = document.getElementById("x-axis"), lg = document.getElementById("log-scale"), sm = document.getElementById("smoothing");
    function redraw() {
      A.xAxis = x ? x.value : "step";
      A.logScale = lg ? lg.checked : false;
      A.smoothing = sm ? parseFloat(sm.value) : 0;
      charts.forEach(function (c) { if (c.series) c.draw(); });
    }
    [x, lg, sm].forEach(function (el) { if (el) el.addEventListener("change", redraw); });
    if (sm) sm.addEventListener("input", redraw);
    document.addEventListener("atelier:theme", redraw);
  }

  function compareChart() {
    var fig = document.getElementById("overlay"), data = document.getElementById("compare-data");
    if (!fig || !data || !window.uPlot) return;
    var ws = data.getAttribute("data-workspace"), name = fig.getAttribute("data-metric");
    var sources = [];
    document.querySelectorAll("#diff thead th[data-run]").forEach(function (th) {
      sources.push({ ws: ws, run: th.getAttribute("data-run"), name: name, label: th.querySelector("a").textContent });
    });
    var c = new Chart(fig, sources, { key: "compare", height: 320, legend: true });
    c.load().then(function () { document.body.setAttribute("data-charts-ready", "1"); });
    controls([c]);
  }

  // ---- a web service's traffic ----

  // serviceCharts polls the service's gateway counters every 2 s while the page is visible and
  // draws, for each interval, the request rate (all and 5xx) and the latency (mean and the
  // 95th percentile, from the histogram's buckets), the last 5 minutes.
  function serviceCharts() {
    var sec = document.getElementById("service-traffic");
    var rateFig = document.getElementById("rate-chart"), latFig = document.getElementById("latency-chart");
    if (!sec || !rateFig || !latFig || !window.uPlot) return;
    var url = "/w/" + encodeURIComponent(sec.getAttribute("data-workspace")) + "/services/" +
      encodeURIComponent(sec.getAttribute("data-service")) + "/stats";
    var keep = 150, prev = null;
    var rate = [[], [], []], lat = [[], [], []];
    var plots = (A.servicePlots = {});
    A.serviceSamples = 0;
    function p95(cur, old) {
      var total = cur.latency_count - old.latency_count;
      if (total <= 0) return null;
      var want = 0.95 * total, last = null;
      for (var i = 0; i < cur.buckets.length; i++) {
        var b = cur.buckets[i], ob = old.buckets[i] || { count: 0 };
        last = b.le;
        if (b.count - ob.count >= want) return b.le * 1000;
      }
      return last == null ? null : last * 1000; // beyond the last bound
    }
    function plot(fig, key, data, labels) {
      var el = fig.querySelector(".plot");
      var fg = cssVar("--fg") || "#000", grid = cssVar("--line") || "#ddd";
      var axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } };
      if (plots[key]) { plots[key].setData(data); } else {
        plots[key] = new uPlot({
          width: el.clientWidth || 600, height: 200, scales: { x: { time: true } },
          series: [{ label: "time" }, { label: labels[0], stroke: palette[0], width: 1.5, spanGaps: true, points: { show: true, size: 4 } },
            { label: labels[1], stroke: palette[1], width: 1.5, spanGaps: true, points: { show: true, size: 4 } }],
          axes: [axis, Object.assign({}, axis, { size: 60 })],
        }, data, el);
      }
      fig.setAttribute("data-points", String(data[0].length));
    }
    function sample() {
      if (document.hidden) return Promise.resolve();
      return fetch(url, { credentials: "same-origin" }).then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      }).then(function (cur) {
        A.serviceSamples++;
        if (prev && cur.time > prev.time) {
          var dt = (cur.time - prev.time) / 1000, t = cur.time / 1000;
          var n = cur.requests - prev.requests, dc = cur.latency_count - prev.latency_count;
          if (n < 0 || dc < 0) { prev = cur; return; } // the service restarted: counters began again
          rate[0].push(t); rate[1].push(n / dt); rate[2].push((cur.errors - prev.errors) / dt);
          lat[0].push(t); lat[1].push(dc > 0 ? (cur.latency_sum - prev.latency_sum) / dc * 1000 : null); lat[2].push(p95(cur, prev));
          [rate, lat].forEach(function (d) { d.forEach(function (col) { if (col.length > keep) col.shift(); }); });
          plot(rateFig, "rate", rate, ["requests/s", "5xx/s"]);
          plot(latFig, "latency", lat, ["mean ms", "p95 ms"]);
          var last = lat[1][lat[1].length - 1];
          document.getElementById("service-rate").textContent = (n / dt).toFixed(2) + " requests/s" +
            (last != null ? ", mean " + last.toFixed(1) + " ms" : "") + "; " + cur.replicas.busy + " busy / " + cur.replicas.ready + " ready";
        }
        prev = cur;
      }).catch(function (e) { sec.setAttribute("data-error", e.message); });
    }
    function loop() { sample().then(function () { setTimeout(loop, A.serviceInterval || 2000); }); }
    loop();
    document.addEventListener("atelier:theme", function () {
      Object.keys(plots).forEach(function (k) { plots[k].destroy(); delete plots[k]; });
      if (rate[0].length) { plot(rateFig, "rate", rate, ["requests/s", "5xx/s"]); plot(latFig, "latency", lat, ["mean ms", "p95 ms"]); }
    });
  }

  // ---- the log ----

  // followLog reads what is appended to the shown log from where the page's tail ended, over
  // the log endpoint's follow stream, until the run ends.
  function followLog() {
    var pre = document.getElementById("log"), run = document.getElementById("run");
    if (!pre || !run || !window.fetch || !window.TextDecoder) return;
    var ws = run.getAttribute("data-workspace"), id = run.getAttribute("data-run");
    var path = pre.getAttribute("data-log"), offset = parseInt(pre.getAttribute("data-offset") || "0", 10);
    var follow = document.getElementById("follow");
    var maxChars = 4 << 20;
    function atEnd() { if (!follow || follow.checked) pre.scrollTop = pre.scrollHeight; }
    atEnd();
    if (follow) follow.addEventListener("change", atEnd);
    if (pre.getAttribute("data-done") === "true") return;
    var dec = new TextDecoder();
    function connect() {
      var url = api(ws, "/runs/" + encodeURIComponent(id) + "/logs/" + pathEsc(path) + "?follow=true&offset=" + offset);
      fetch(url, { credentials: "same-origin" }).then(function (r) {
        if (r.status === 404) { return retry(2000); } // no log yet
        if (!r.ok || !r.body) return retry(5000);
        var reader = r.body.getReader(), got = false;
        function pump() {
          return reader.read().then(function (res) {
            if (res.done) {
              // The stream ends when the run does; one that ended early is read again.
              if (got && !/^(Completed|Failed|Canceled)$/.test(run.getAttribute("data-status"))) retry(1000);
              return;
            }
            if (!got) { var none = document.getElementById("no-log"); if (none) none.remove(); }
            got = true;
            offset += res.value.length;
            pre.appendChild(document.createTextNode(dec.decode(res.value, { stream: true })));
            if (pre.textContent.length > maxChars) pre.textContent = pre.textContent.slice(-maxChars / 2);
            pre.setAttribute("data-offset", String(offset));
            atEnd();
            return pump();
          });
        }
        return pump();
      }).catch(function () { retry(5000); });
    }
    function retry(ms) { setTimeout(connect, ms); }
    connect();
  }

  ready(function () {
    theme();
    // The charts' reads go first: the event stream and the followed log each hold one of the
    // browser's six connections to the server while the page is open.
    Promise.resolve(runCharts()).then(function () {
      liveStatus();
      followLog();
    });
    compareChart();
    expandRows();
    liveCells.schedule();
    serviceCharts();
    // A table swapped in by htmx (a query, a sort, a page) starts its own polling if it needs it.
    document.addEventListener("htmx:afterSettle", function () { liveCells.schedule(); });
  });
})();
