/*
 * What every page does in the browser, on top of htmx (loaded first, in <head>):
 *
 * - marks the page as scripted (html.js), so the phone menu starts collapsed, and opens/closes it;
 * - keeps times current: elapsed times tick (data-since, with data-estimate the previous run's
 *   length), countdowns count (data-until), relative times stay true (time[data-relative]);
 *   in the same words as the server (core/words.py);
 * - polls only while the page is visible: a polled element (data-poll) skips its request while the
 *   tab is hidden, and all of them refresh at once when it shows again ("page-visible");
 * - opens the confirmation a destructive action asks for (core.pages.ask) in its <dialog>;
 * - copy buttons (data-copy="<input id>"), announced in the page's live region;
 * - keeps a polled card's <details data-keep-open> open across refreshes.
 */
(function () {
  "use strict";

  document.documentElement.classList.add("js");

  // --- words (core/words.py) ----------------------------------------------------------------------

  function pad(n) { return n < 10 ? "0" + n : String(n); }

  function duration(seconds) {
    seconds = Math.max(Math.floor(seconds), 0);
    var hours = Math.floor(seconds / 3600);
    var minutes = Math.floor((seconds % 3600) / 60);
    var rest = seconds % 60;
    if (hours) return hours + "h " + pad(minutes) + "m";
    if (minutes) return minutes + "m " + pad(rest) + "s";
    return rest + "s";
  }

  function relative(moment, now) {
    var seconds = (now - moment) / 1000;
    var future = seconds < 0;
    seconds = Math.abs(seconds);
    if (seconds < 10) return future ? "in a moment" : "just now";
    var units = [[86400, "day"], [3600, "hour"], [60, "minute"], [1, "second"]];
    for (var i = 0; i < units.length; i++) {
      if (seconds >= units[i][0]) {
        var n = Math.floor(seconds / units[i][0]);
        var text = n + " " + units[i][1] + (n === 1 ? "" : "s");
        return future ? "in " + text : text + " ago";
      }
    }
    return "";
  }

  function estimateText(elapsed, estimate) {
    if (elapsed <= estimate) return duration(elapsed) + " of about " + duration(estimate);
    return duration(elapsed) + ", longer than the previous run (" + duration(estimate) + ")";
  }

  // --- ticking times ------------------------------------------------------------------------------

  // The server's clock and the browser's may differ: elapsed times count on from what the server
  // rendered (its text) rather than from the browser's idea of the start.
  function tick() {
    var now = Date.now();
    var i;
    var ticking = document.querySelectorAll("[data-since]");
    for (i = 0; i < ticking.length; i++) {
      var el = ticking[i];
      var elapsed = elapsedOf(el, now);
      var estimate = el.getAttribute("data-estimate");
      var text = estimate ? estimateText(elapsed, Number(estimate)) : duration(elapsed);
      if (el.textContent !== text) el.textContent = text;
    }
    var countdowns = document.querySelectorAll("[data-until]");
    for (i = 0; i < countdowns.length; i++) {
      var left = (Date.parse(countdowns[i].getAttribute("data-until")) - now) / 1000;
      var words = left > 0 ? "in " + duration(Math.ceil(left)) : "now";
      if (countdowns[i].textContent !== words) countdowns[i].textContent = words;
    }
  }

  function elapsedOf(el, now) {
    // What the server said when it rendered, plus the browser's time since: immune to clock skew.
    if (!el._rendered) el._rendered = { at: now, seconds: parseDuration(el.textContent) };
    if (el._rendered.seconds === null) return (now - Date.parse(el.getAttribute("data-since"))) / 1000;
    return el._rendered.seconds + (now - el._rendered.at) / 1000;
  }

  function parseDuration(text) {
    var match = /^\s*(?:(\d+)h\s*)?(?:(\d+)m\s*)?(?:(\d+)s)?/.exec(text || "");
    if (!match || !match[0].trim()) return null;
    return Number(match[1] || 0) * 3600 + Number(match[2] || 0) * 60 + Number(match[3] || 0);
  }

  function refreshRelative() {
    var now = Date.now();
    var times = document.querySelectorAll("time[data-relative]");
    for (var i = 0; i < times.length; i++) {
      var rel = times[i].querySelector(".rel");
      var text = relative(Date.parse(times[i].getAttribute("datetime")), now);
      if (rel && text && rel.textContent !== text) rel.textContent = text;
    }
  }

  // --- polling only while visible -------------------------------------------------------------

  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail && event.detail.elt;
    if (document.hidden && elt && elt.hasAttribute && elt.hasAttribute("data-poll")) event.preventDefault();
  });
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && window.htmx) window.htmx.trigger(document.body, "page-visible");
  });

  // --- confirmations ------------------------------------------------------------------------------

  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail && event.detail.target;
    if (target && target.id === "confirm-dialog" && !target.open) {
      target.showModal();
      var keep = target.querySelector("[autofocus]");
      if (keep) keep.focus();
    }
  });

  document.addEventListener("click", function (event) {
    var closer = event.target.closest ? event.target.closest("[data-dialog-close]") : null;
    if (closer) {
      var dialog = closer.closest("dialog");
      // The confirming button submits its form first (htmx reads it on submit), then the dialog goes.
      if (dialog) setTimeout(function () { dialog.close(); }, 0);
    }
    var copy = event.target.closest ? event.target.closest("[data-copy]") : null;
    if (copy) copyFrom(copy);
    var toggle = event.target.closest ? event.target.closest(".menu-toggle") : null;
    if (toggle) {
      var open = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", String(open));
      var menu = document.getElementById(toggle.getAttribute("aria-controls"));
      if (menu) menu.classList.toggle("open", open);
    }
  });

  // --- copy -------------------------------------------------------------------------------------

  function announce(text) {
    var region = document.getElementById("announcer");
    if (!region) return;
    region.textContent = "";
    setTimeout(function () { region.textContent = text; }, 50);
  }

  function copyFrom(button) {
    var input = document.getElementById(button.getAttribute("data-copy"));
    if (!input) return;
    var done = function () {
      button.textContent = "Copied";
      announce("Copied to the clipboard.");
      setTimeout(function () { button.textContent = "Copy"; }, 2000);
    };
    var fallback = function () {
      input.select();
      try {
        if (document.execCommand("copy")) return done();
      } catch (e) { /* below */ }
      announce("Select the text and copy it: the browser refused.");
    };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(input.value).then(done, fallback);
    } else {
      fallback();
    }
  }

  // --- details kept open across a refresh of what holds them ------------------------------------

  var openDetails = {};
  document.addEventListener("htmx:beforeSwap", function () {
    var open = document.querySelectorAll("details[data-keep-open][id]");
    openDetails = {};
    for (var i = 0; i < open.length; i++) openDetails[open[i].id] = open[i].open;
  });
  document.addEventListener("htmx:afterSettle", function () {
    Object.keys(openDetails).forEach(function (id) {
      var el = document.getElementById(id);
      if (el && openDetails[id]) el.open = true;
    });
  });

  // Exposed for the log panel (same words) and the browser tests.
  window.dashboardUi = { duration: duration, relative: relative, estimateText: estimateText };

  function start() {
    tick();
    setInterval(tick, 1000);
    setInterval(refreshRelative, 15000);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
