/* Sortable, filterable tables and the gallery's A/B viewer. Plain DOM, no library, no network: works from file://. */
(function () {
  "use strict";

  function cellKey(cell) {
    if (!cell) return { num: NaN, text: "" };
    var raw = cell.hasAttribute("data-v") ? cell.getAttribute("data-v") : cell.textContent;
    var num = raw === "" ? NaN : parseFloat(raw);
    return { num: num, text: cell.textContent.trim().toLowerCase() };
  }

  function columnIsNumeric(rows, col) {
    var seen = 0, numeric = 0;
    rows.forEach(function (r) {
      var k = cellKey(r.cells[col]);
      if (k.text === "" || k.text === "–" || k.text === "—") return;
      seen += 1;
      if (!isNaN(k.num)) numeric += 1;
    });
    return seen > 0 && numeric === seen;
  }

  function higherIsBetter(th) {
    if (th.hasAttribute("data-hib")) return th.getAttribute("data-hib") === "1";
    var t = th.textContent;
    if (t.indexOf("↓") >= 0) return false;
    return t.indexOf("↑") >= 0 ? true : null;
  }

  function sortTable(table, col, th) {
    var header = table.rows[0];
    var rows = Array.prototype.slice.call(table.rows, 1);
    var numeric = th.getAttribute("data-type") === "number" || (th.getAttribute("data-type") !== "text" && columnIsNumeric(rows, col));
    var current = th.getAttribute("data-dir");
    var dir;
    if (current) {
      dir = current === "asc" ? "desc" : "asc";
    } else if (numeric) {
      // best first: ascending for ranks and lower-is-better columns, descending otherwise
      dir = th.textContent.trim() === "#" || higherIsBetter(th) === false ? "asc" : "desc";
    } else {
      dir = "asc";
    }
    Array.prototype.forEach.call(header.cells, function (h) {
      h.removeAttribute("data-dir");
      h.classList.remove("sort-asc", "sort-desc");
      h.removeAttribute("aria-sort");
    });
    th.setAttribute("data-dir", dir);
    th.classList.add(dir === "asc" ? "sort-asc" : "sort-desc");
    th.setAttribute("aria-sort", dir === "asc" ? "ascending" : "descending");
    var sign = dir === "asc" ? 1 : -1;
    var keyed = rows.map(function (r, i) { return { row: r, key: cellKey(r.cells[col]), i: i }; });
    keyed.sort(function (a, b) {
      if (numeric) {
        var an = isNaN(a.key.num), bn = isNaN(b.key.num);
        if (an || bn) return an === bn ? a.i - b.i : (an ? 1 : -1); // missing values last either way
        if (a.key.num !== b.key.num) return sign * (a.key.num - b.key.num);
        return a.i - b.i;
      }
      var c = a.key.text.localeCompare(b.key.text);
      return c !== 0 ? sign * c : a.i - b.i;
    });
    var parent = rows.length ? rows[0].parentNode : null;
    keyed.forEach(function (k) { parent.appendChild(k.row); });
  }

  function filterTable(table, query) {
    var q = query.trim().toLowerCase();
    Array.prototype.slice.call(table.rows, 1).forEach(function (r) {
      r.hidden = q !== "" && r.textContent.toLowerCase().indexOf(q) < 0;
    });
  }

  function enhanceTable(table) {
    if (table.rows.length < 2) return;
    var header = table.rows[0];
    Array.prototype.forEach.call(header.cells, function (th, col) {
      if (th.colSpan > 1) return;
      th.addEventListener("click", function (ev) {
        if (ev.target.tagName === "A") return; // header links jump to the board
        sortTable(table, col, th);
      });
    });
    if (table.rows.length > 3) {
      var input = document.createElement("input");
      input.type = "search";
      input.className = "table-filter";
      input.placeholder = "filter rows (method, mode…)";
      input.setAttribute("aria-label", "filter rows");
      input.addEventListener("input", function () { filterTable(table, input.value); });
      table.parentNode.insertBefore(input, table);
    }
  }

  function setupOverview(block) {
    var select = block.querySelector("select.ov-metric");
    if (!select) return;
    select.addEventListener("change", function () {
      block.querySelectorAll(".ov-table").forEach(function (t) {
        t.hidden = t.getAttribute("data-metric") !== select.value;
      });
    });
  }

  function setupViewer(group) {
    var items = Array.prototype.slice.call(group.querySelectorAll("figure.g-item"));
    var cmp = group.querySelector(".cmp");
    if (!cmp || items.length === 0) return;
    var selA = cmp.querySelector(".cmp-a"), selB = cmp.querySelector(".cmp-b");
    var slider = cmp.querySelector(".cmp-slider"), zoom = cmp.querySelector(".cmp-zoom");
    var imgA = cmp.querySelector(".cmp-img-a"), imgB = cmp.querySelector(".cmp-img-b");
    var stage = cmp.querySelector(".cmp-stage"), line = cmp.querySelector(".cmp-line");
    var shown = cmp.querySelector(".cmp-shown");
    function src(i) {
      var f = items[i];
      return f.getAttribute("data-full") || f.querySelector("img").getAttribute("src");
    }
    items.forEach(function (f, i) {
      [selA, selB].forEach(function (s) {
        var o = document.createElement("option");
        o.value = String(i);
        o.textContent = f.getAttribute("data-label");
        s.appendChild(o);
      });
    });
    var firstOut = items.findIndex(function (f) { return f.getAttribute("data-kind") === "sr"; });
    var hr = items.findIndex(function (f) { return f.getAttribute("data-kind") === "hr"; });
    selA.value = String(firstOut >= 0 ? firstOut : 0);
    selB.value = String(hr >= 0 && hr !== Number(selA.value) ? hr : Math.min(1, items.length - 1));
    function layout() {
      var w = imgB.naturalWidth || imgA.naturalWidth;
      if (w) stage.style.width = w * Number(zoom.value) + "px";
    }
    function split() {
      var s = Number(slider.value);
      imgA.style.clipPath = "inset(0 " + (100 - s) + "% 0 0)";
      line.style.left = "calc(" + s + "% - 1px)";
      line.hidden = s <= 0 || s >= 100;
      var a = items[Number(selA.value)].getAttribute("data-label");
      var b = items[Number(selB.value)].getAttribute("data-label");
      shown.textContent = s >= 100 ? "showing A: " + a : s <= 0 ? "showing B: " + b : "A: " + a + " | B: " + b;
    }
    function pick() {
      imgA.src = src(Number(selA.value));
      imgB.src = src(Number(selB.value));
      items.forEach(function (f, i) {
        f.classList.toggle("is-a", i === Number(selA.value));
        f.classList.toggle("is-b", i === Number(selB.value));
      });
      split();
    }
    selA.addEventListener("change", pick);
    selB.addEventListener("change", pick);
    slider.addEventListener("input", split);
    zoom.addEventListener("change", layout);
    imgA.addEventListener("load", layout);
    imgB.addEventListener("load", layout);
    cmp.querySelector(".cmp-toggle").addEventListener("click", function () {
      slider.value = Number(slider.value) >= 50 ? "0" : "100";
      split();
    });
    items.forEach(function (f, i) {
      f.querySelector("img").addEventListener("click", function (ev) {
        (ev.shiftKey ? selB : selA).value = String(i);
        pick();
      });
    });
    pick();
    layout();
  }

  function init() {
    document.querySelectorAll("table.sortable").forEach(enhanceTable);
    document.querySelectorAll(".ov-dataset").forEach(setupOverview);
    document.querySelectorAll(".g-group").forEach(setupViewer);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
