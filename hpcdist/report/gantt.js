// The report's Gantt: one row per rank on a <canvas>, drawn from column arrays (no DOM node per task).
// Wheel: zoom around the pointer; drag: pan; double click: the whole run. Hover: the task's name and duration.
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("gantt-data").textContent);
  var cv = document.getElementById("gantt"), tip = document.getElementById("tip");
  var ctx = cv.getContext("2d");
  var ROW = 26, LEFT = 150, TOP = 22, n = D.s.length, nrows = D.rows.length;
  var COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
                "#9c755f", "#bab0ac"];
  var dispatch = D.fns.indexOf("dispatch");
  var byRow = [], maxDur = [], i, r;
  for (r = 0; r < nrows; r++) { byRow.push([]); maxDur.push(0); }
  for (i = 0; i < n; i++) { byRow[D.r[i]].push(i); if (D.d[i] > maxDur[D.r[i]]) maxDur[D.r[i]] = D.d[i]; }
  byRow.forEach(function (a) { a.sort(function (x, y) { return D.s[x] - D.s[y]; }); });
  var v0 = 0, v1 = D.wall, W = 0, dpr = window.devicePixelRatio || 1, drag = null;
  cv.dataset.rows = String(nrows);
  cv.dataset.tasks = String(n);

  function fmt(us) {
    if (us < 1000) return us.toFixed(0) + " \u00b5s";
    if (us < 1e6) return (us / 1000).toFixed(2) + " ms";
    return (us / 1e6).toFixed(3) + " s";
  }
  function xOf(t) { return LEFT + (t - v0) / (v1 - v0) * (W - LEFT); }
  function tOf(x) { return v0 + (x - LEFT) / (W - LEFT) * (v1 - v0); }
  function color(f) { return f === dispatch ? "#999" : COLORS[f % COLORS.length]; }
  // the first index of a row's list whose task may reach t (starts sorted; no task longer than maxDur)
  function firstFrom(list, t) {
    var lo = 0, hi = list.length;
    while (lo < hi) { var mid = (lo + hi) >> 1; if (D.s[list[mid]] < t) lo = mid + 1; else hi = mid; }
    return lo;
  }

  function draw() {
    var h = TOP + nrows * ROW + 4;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, W, h);
    ctx.font = "12px sans-serif";
    ctx.textBaseline = "middle";
    for (r = 0; r < nrows; r++) {
      var y = TOP + r * ROW;
      ctx.fillStyle = r % 2 ? "#f6f6f6" : "#fff";
      ctx.fillRect(LEFT, y, W - LEFT, ROW);
      ctx.fillStyle = "#222";
      ctx.fillText(D.rows[r], 4, y + ROW / 2);
      var list = byRow[r], scale = (W - LEFT) / (v1 - v0);
      for (var j = firstFrom(list, v0 - maxDur[r]); j < list.length; j++) {
        var k = list[j], s = D.s[k];
        if (s > v1) break;
        if (s + D.d[k] < v0) continue;
        var x = Math.max(LEFT, xOf(s)), w = Math.max(1, Math.min(W, xOf(s + D.d[k])) - x);
        ctx.fillStyle = color(D.f[k]);
        ctx.fillRect(x, y + 3, w, ROW - 6);
      }
    }
    ctx.fillStyle = "#d00";
    (D.lost || []).forEach(function (l) {  // a lost worker: a red mark across its row
      var lx = xOf(l[1]);
      if (lx < LEFT || lx > W) return;
      ctx.fillRect(lx - 1, TOP + l[0] * ROW, 3, ROW);
      ctx.fillText("lost", lx + 4, TOP + l[0] * ROW + ROW / 2);
    });
    ctx.fillStyle = "#222";
    ctx.textBaseline = "top";
    for (var t = 0; t <= 4; t++) {
      var at = v0 + (v1 - v0) * t / 4, tx = xOf(at);
      ctx.fillRect(tx, TOP - 4, 1, 4);
      ctx.fillText(fmt(at), Math.min(tx, W - 70), 2);
    }
  }

  function resize() {
    W = Math.max(400, cv.parentElement.clientWidth);
    var h = TOP + nrows * ROW + 4;
    cv.width = W * dpr; cv.height = h * dpr;
    cv.style.width = W + "px"; cv.style.height = h + "px";
    draw();
  }

  // the task under (x, y) in canvas pixels, or -1: the closest one within 3 pixels on that row
  function hit(x, y) {
    r = Math.floor((y - TOP) / ROW);
    if (r < 0 || r >= nrows || x < LEFT) return -1;
    var t = tOf(x), slack = 3 * (v1 - v0) / (W - LEFT), list = byRow[r], best = -1, bestGap = Infinity;
    for (var j = firstFrom(list, t - maxDur[r] - slack); j < list.length; j++) {
      var k = list[j], s = D.s[k];
      if (s > t + slack) break;
      var gap = t < s ? s - t : (t > s + D.d[k] ? t - s - D.d[k] : 0);
      if (gap <= slack && gap < bestGap) { best = k; bestGap = gap; }
    }
    return best;
  }

  function show(k, clientX, clientY) {
    if (k < 0) { tip.style.display = "none"; tip.dataset.task = ""; return; }
    var name = D.fns[D.f[k]] + " " + D.k[k];
    tip.textContent = name + " \u2014 " + fmt(D.d[k]) + " (at " + fmt(D.s[k]) + ", " + D.rows[D.r[k]] + ")";
    tip.dataset.task = String(k);
    tip.style.display = "block";
    var left = Math.min(clientX + 12, document.documentElement.clientWidth - tip.offsetWidth - 4);
    tip.style.left = (Math.max(0, left) + window.scrollX) + "px";
    tip.style.top = (clientY + window.scrollY + 12) + "px";
  }

  cv.addEventListener("mousemove", function (ev) {
    var box = cv.getBoundingClientRect(), x = ev.clientX - box.left, y = ev.clientY - box.top;
    if (drag) {
      var shift = (drag.x - x) / (W - LEFT) * (drag.v1 - drag.v0);
      v0 = drag.v0 + shift; v1 = drag.v1 + shift;
      draw();
      return;
    }
    show(hit(x, y), ev.clientX, ev.clientY);
  });
  cv.addEventListener("mouseleave", function () { show(-1); });
  cv.addEventListener("mousedown", function (ev) {
    drag = {x: ev.clientX - cv.getBoundingClientRect().left, v0: v0, v1: v1};
  });
  window.addEventListener("mouseup", function () { drag = null; });
  cv.addEventListener("dblclick", function () { v0 = 0; v1 = D.wall; draw(); });
  cv.addEventListener("wheel", function (ev) {
    ev.preventDefault();
    var at = tOf(ev.clientX - cv.getBoundingClientRect().left), f = Math.exp(ev.deltaY * 0.002);
    var span = Math.max(1, (v1 - v0) * f);
    v0 = at - (at - v0) / (v1 - v0) * span; v1 = v0 + span;
    draw();
  }, {passive: false});
  window.addEventListener("resize", resize);

  // for tests and scripts: the page position (client pixels) of task k's middle
  window.hpcdistGantt = {
    rows: nrows, tasks: n,
    point: function (k) {
      var box = cv.getBoundingClientRect(), mid = Math.min(Math.max(D.s[k] + D.d[k] / 2, v0), v1);
      return {x: box.left + xOf(mid), y: box.top + TOP + D.r[k] * ROW + ROW / 2};
    },
    longest: function () {
      var best = -1;
      for (var k = 0; k < n; k++) if (D.f[k] !== dispatch && (best < 0 || D.d[k] > D.d[best])) best = k;
      return best;
    }
  };
  resize();
  cv.dataset.drawn = "1";
})();
