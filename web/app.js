// drover web: refreshes the numbers of the page it is on from the JSON endpoints, once a second
// at most. The server renders every table and the job's chart, so the page reads without this;
// nothing here writes HTML (textContent only), so data stays text.
'use strict';
(function () {
  const body = document.body;
  const page = body.dataset.page;
  const every = 1000;

  function fmtCount(v) { return v === null || v === undefined ? '-' : String(Math.round(v)); }
  function fmtDur(s) {
    if (s === null || s === undefined) return '-';
    s = Math.round(s);
    if (s >= 3600) return Math.floor(s / 3600) + 'h' + String(Math.floor(s / 60) % 60).padStart(2, '0') + 'm';
    if (s >= 60) return Math.floor(s / 60) + 'm' + String(s % 60).padStart(2, '0') + 's';
    return s + 's';
  }
  function fill(row, o) {
    row.querySelectorAll('[data-k]').forEach(function (el) {
      const k = el.dataset.k;
      if (k === 'progress') {
        if (o.total > 0) { el.max = 1; el.value = Math.min(1, (o.done + o.dead) / o.total); }
        return;
      }
      if (!(k in o)) return;
      const v = o[k];
      if (k === 'state') el.textContent = v;
      else if (k === 'rate') el.textContent = v.toFixed(1) + (page === 'job' ? '/s' : '');
      else if (k === 'eta_s') el.textContent = fmtDur(v);
      else if (k === 'age_s') el.textContent = v.toFixed(1) + 's';
      else el.textContent = fmtCount(v);
    });
  }
  function refresh(data) {
    if (page === 'jobs') {
      data.forEach(function (o) {
        document.querySelectorAll('tr[data-job]').forEach(function (tr) {
          if (tr.dataset.job === o.id) fill(tr, o);
        });
      });
    } else if (page === 'job') {
      fill(document.getElementById('summary'), data);
    } else if (page === 'workers') {
      data.workers.forEach(function (o) {
        document.querySelectorAll('tr[data-worker]').forEach(function (tr) {
          if (tr.dataset.worker === o.id) fill(tr, o);
        });
      });
    }
  }
  const url = page === 'jobs' ? '/api/jobs'
    : page === 'job' ? '/api/jobs/' + encodeURIComponent(body.dataset.key)
    : page === 'workers' ? '/api/workers' : null;
  if (!url) return;
  function tick() {
    if (document.hidden) { setTimeout(tick, every); return; }
    fetch(url, { credentials: 'same-origin', cache: 'no-store' })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (d) { if (d) refresh(d); })
      .catch(function () {})
      .finally(function () { setTimeout(tick, every); });
  }
  setTimeout(tick, every);
})();
