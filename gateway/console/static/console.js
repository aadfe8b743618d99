// The console's one script (served from /console/static; the CSP allows no inline script).
// Find as you type, forms that post once, keyboard shortcuts, the KPI chart.
"use strict";

function onReady(fn) { if (document.readyState !== "loading") { fn(); } else { document.addEventListener("DOMContentLoaded", fn); } }

onReady(function () {
  // find as you type: the server renders the results; Enter opens the first one
  var find = document.getElementById("find");
  var results = document.getElementById("results");
  if (find && results) {
    var timer = null, seq = 0;
    find.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var q = find.value.trim(), mine = ++seq;
        if (q.length < 2) { results.innerHTML = ""; return; }
        fetch("/console/?partial=1&q=" + encodeURIComponent(q), { credentials: "same-origin" })
          .then(function (r) { return r.text(); })
          .then(function (html) { if (mine === seq) { results.innerHTML = html; results.dataset.query = q; } });
      }, 200);
    });
    document.getElementById("find-form").addEventListener("submit", function (event) {
      var first = results.querySelector("a.result");
      if (first && results.dataset.query === find.value.trim()) { event.preventDefault(); window.location = first.href; }
    });
  }

  // a form that changes something posts once: the first submit disables its buttons
  document.querySelectorAll("form").forEach(function (form) {
    if (form.method.toLowerCase() !== "post") { return; }
    form.addEventListener("submit", function (event) {
      if (form.dataset.sent) { event.preventDefault(); return; }
      form.dataset.sent = "1";
      setTimeout(function () { form.querySelectorAll("button").forEach(function (b) { b.disabled = true; }); }, 0);
    });
  });

  // shortcuts: "/" find, "g f" follow-ups, "g k" KPIs
  var pending = false;
  document.addEventListener("keydown", function (event) {
    var tag = (event.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "select" || tag === "textarea" || event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (event.key === "/") { event.preventDefault(); window.location = "/console/"; return; }
    if (pending) {
      pending = false;
      var target = event.key === "f" ? "nav-follow-ups" : event.key === "k" ? "nav-kpis" : null;
      var link = target && document.getElementById(target);
      if (link) { window.location = link.href; }
      return;
    }
    if (event.key === "g") { pending = true; setTimeout(function () { pending = false; }, 1000); }
  });

  // an import's progress bar follows the job as interfaces records it; the page reloads when the phase ends
  var job = document.getElementById("import-job");
  if (job && job.dataset.running) {
    var bar = document.getElementById("import-progress"), percent = document.getElementById("import-percent");
    var follow = function () {
      fetch("/console/imports/" + job.dataset.job + "/progress", { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (now) {
          if (now === null) { setTimeout(follow, 3000); return; }
          if (now.percent !== null) { bar.value = now.percent; percent.textContent = now.percent.toFixed(1) + " %"; }
          bar.dataset.followed = String(Number(bar.dataset.followed || 0) + 1);
          if (now.running) { setTimeout(follow, 1000); } else { window.location.reload(); }
        })
        .catch(function () { setTimeout(follow, 3000); });
    };
    setTimeout(follow, 500);
  }

  // the KPI chart: rates against their targets, drawn by uPlot from the table's figures
  var chart = document.getElementById("kpi-chart");
  if (chart && window.uPlot) {
    var rows = Array.prototype.slice.call(document.querySelectorAll("#kpi-table tr[data-kpi]"))
      .filter(function (row) { return row.dataset.kpi.slice(-3) === "_bp" && row.dataset.value !== ""; });
    if (rows.length) {
      var xs = rows.map(function (_, i) { return i + 1; });
      var values = rows.map(function (row) { return Number(row.dataset.value) / 100; });
      var targets = rows.map(function (row) { return row.dataset.target ? Number(row.dataset.target) / 100 : null; });
      var labels = rows.map(function (row) { return row.querySelector("th").textContent; });
      new uPlot({
        width: Math.min(chart.clientWidth || 900, 1200), height: 260,
        scales: { x: { time: false, range: [0.5, rows.length + 0.5] }, y: { range: [0, 100] } },
        axes: [{ values: function (u, splits) { return splits.map(function (s) { return labels[s - 1] || ""; }); }, incrs: [1] },
               { values: function (u, splits) { return splits.map(function (s) { return s + "%"; }); } }],
        series: [{}, { label: "%", stroke: "#12355b", fill: "rgba(18,53,91,.35)", paths: uPlot.paths.bars({ size: [0.5] }) },
                 { label: "target", stroke: "#e8b931", width: 3, points: { size: 10 }, paths: function () { return null; } }],
        legend: { show: false }
      }, [xs, values, targets], chart);
      chart.dataset.drawn = "1";
    }
  }
});
