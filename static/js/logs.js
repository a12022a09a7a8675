/*
 * The live log panel of a prebuild's page (templates/prebuilds/detail.html).
 *
 * It asks the dashboard for a logs token (POST data-token-url, with the session and CSRF header),
 * then reads the logs endpoint (data-logs-url) with that token only: fetch with credentials
 * "omit", so the session cookie never reaches the logs endpoint. Contract of the endpoint:
 *   GET <logs-url>?tail=n | ?after=seq&limit=n | ?before=seq&limit=n, Authorization: Bearer <token>
 *   -> {lines: [{seq, step, stream, text, time}], first, last, more, phase, statusVersion}
 *   GET <logs-url>?q=text[&after=seq] -> {matches: [seq], total, complete, last, ...}
 *   GET <logs-url>?outline=1 -> {steps: [{name, first, last, lines}], ...}; 401 for a bad token.
 *
 * Log text is untrusted: it only ever reaches the page as text nodes (never innerHTML). ANSI SGR
 * colours (30-37, 90-97, bold, reset) become spans with classes; every other escape is dropped.
 * A big log stays fast because only a window of it is in the DOM: the last TAIL lines to start,
 * any other window on demand (a line's link #L<n>, a search match, a step, the failing lines), and
 * at most MAX_LINES line elements while following the end.
 *
 * Every answer carries the prebuild's status version; when it is newer than the status card's
 * (data-status-version), the card is refreshed (the "prebuild-status" event), so the status and
 * the log never disagree for longer than one poll.
 */
(function () {
  "use strict";

  var TAIL = 1000; // lines shown when the panel opens
  var PAGE = 2000; // lines per request while catching up
  var EARLIER = 1000; // lines per "Load earlier/later lines"
  var WINDOW = 1000; // lines loaded around a line that is jumped to
  var BEFORE = 300; // ...of them before it
  var POLL_MS = 500; // live lines are at most about this far behind
  var HIDDEN_POLL_MS = 2000; // a background tab polls less often
  var MAX_LINES = 5000; // DOM cap while following the end
  var MAX_DETACHED = 2 * MAX_LINES; // DOM cap while reading elsewhere
  var RENEW_BEFORE_S = 600; // renew the one-hour token ten minutes before it expires
  var LINE_HASH = /^#L(\d+)(?:-L?(\d+))?$/;
  // git's progress and notes on stderr while cloning: not errors, so not marked as stderr is.
  var GIT_PROGRESS = /^(Cloning into|remote: |Receiving objects|Resolving deltas|Updating files|Unpacking objects|Counting objects|Compressing objects|Enumerating objects|Total \d+|From |Note: |HEAD is now at|Switched to|Already on|Checking out files)/;

  // --- ANSI --------------------------------------------------------------------------------------

  // Any escape sequence: CSI (ESC [ ... final), OSC (ESC ] ... BEL/ST), or a two-byte escape.
  var ESCAPES = /\x1b\[[0-?]*[ -\/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]?/g;
  var SGR = /^\x1b\[([0-9;]*)m$/;
  var CONTROL = /[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f]/g;

  function appendStyled(parent, text, fg, bold) {
    if (!text) return;
    if (fg === null && !bold) {
      parent.appendChild(document.createTextNode(text));
      return;
    }
    var span = document.createElement("span");
    var classes = [];
    if (fg !== null) classes.push("ansi-" + fg);
    if (bold) classes.push("ansi-bold");
    span.className = classes.join(" ");
    span.textContent = text;
    parent.appendChild(span);
  }

  // What a terminal ends up showing of a line: after its last carriage return (progress bars).
  function lastWritten(text) {
    if (text.indexOf("\r") === -1) return text;
    var parts = text.split("\r").filter(function (p) { return p !== "" && p !== "\n"; });
    return parts.length ? parts[parts.length - 1] : "";
  }

  function renderAnsi(parent, raw) {
    var text = lastWritten(String(raw == null ? "" : raw)).replace(CONTROL, "");
    if (text.indexOf("\x1b") === -1) {
      parent.appendChild(document.createTextNode(text));
      return;
    }
    var fg = null;
    var bold = false;
    var last = 0;
    ESCAPES.lastIndex = 0;
    var match;
    while ((match = ESCAPES.exec(text)) !== null) {
      appendStyled(parent, text.slice(last, match.index), fg, bold);
      last = match.index + match[0].length;
      var sgr = SGR.exec(match[0]);
      if (!sgr) continue; // cursor movement, titles...: dropped
      var codes = sgr[1] === "" ? [0] : sgr[1].split(";").map(Number);
      for (var i = 0; i < codes.length; i++) {
        var code = codes[i];
        if (code === 0) { fg = null; bold = false; }
        else if (code === 1) bold = true;
        else if (code === 22) bold = false;
        else if ((code >= 30 && code <= 37) || (code >= 90 && code <= 97)) fg = code;
        else if (code === 39) fg = null;
        else if (code === 38 || code === 48) {
          // 256-colour and true-colour forms carry parameters of their own: skip them.
          i += codes[i + 1] === 5 ? 2 : codes[i + 1] === 2 ? 4 : 0;
        }
      }
    }
    appendStyled(parent, text.slice(last), fg, bold);
  }

  // Wrap every case-insensitive occurrence of `needle` in the text nodes under `root` in <mark>.
  function markText(root, needle) {
    if (!needle) return;
    var lower = needle.toLowerCase();
    var walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    var nodes = [];
    while (walker.nextNode()) nodes.push(walker.currentNode);
    nodes.forEach(function (node) {
      var text = node.nodeValue;
      var at = text.toLowerCase().indexOf(lower);
      if (at === -1) return;
      var fragment = document.createDocumentFragment();
      var from = 0;
      while (at !== -1) {
        fragment.appendChild(document.createTextNode(text.slice(from, at)));
        var mark = document.createElement("mark");
        mark.textContent = text.slice(at, at + needle.length);
        fragment.appendChild(mark);
        from = at + needle.length;
        at = text.toLowerCase().indexOf(lower, from);
      }
      fragment.appendChild(document.createTextNode(text.slice(from)));
      node.parentNode.replaceChild(fragment, node);
    });
  }

  function number(n) { return Number(n).toLocaleString("en-US"); }

  function utcTime(ms) { return new Date(ms).toISOString().slice(11, 19); }

  function utcStamp(ms) { return new Date(ms).toISOString().replace("T", " ").slice(0, 23) + " UTC"; }

  // --- the panel ---------------------------------------------------------------------------------

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (e) {
      return "";
    }
  }

  function LogPanel(root) {
    this.root = root;
    this.tokenUrl = root.getAttribute("data-token-url");
    this.logsUrl = root.getAttribute("data-logs-url");
    this.out = root.querySelector(".log-output");
    this.status = root.querySelector(".log-status");
    this.range = root.querySelector(".log-range");
    this.buttons = {};
    var names = ["earlier", "later", "latest", "start", "prev", "next"];
    for (var i = 0; i < names.length; i++) {
      this.buttons[names[i]] = root.querySelector('[data-log-action="' + names[i] + '"]');
    }
    this.searchForm = root.querySelector(".log-search");
    this.searchInput = root.querySelector(".log-search input");
    this.matchesText = root.querySelector(".log-matches");
    this.token = null;
    this.renewTimer = null;
    this.pollTimer = null;
    this.first = null; // smallest seq that exists on the server
    this.serverLast = null; // largest seq the server reported
    this.top = null; // smallest seq in the DOM
    this.bottom = null; // largest seq in the DOM
    this.count = 0; // line elements in the DOM
    this.more = true;
    this.following = true;
    this.detached = false; // the DOM stops before the newest lines (the reader is elsewhere)
    this.busy = false;
    this.stopped = false;
    this.failures = 0;
    this.autoTop = 0; // scrollTop the panel last set when following the end
    this.highlight = null; // {from, to, step, kind}: lines shown as picked (a link) or failing
    this.anchor = null; // the line a shift-click extends a picked range from
    this.search = null; // {query, matches: [seq], set, total, complete, index}
    this.statusAskedAt = 0;
  }

  LogPanel.prototype.start = function () {
    var self = this;
    this.out.addEventListener("scroll", function () {
      // While following, only a move above where the panel itself scrolled to is the reader's
      // doing (new lines below, or trimmed lines above, are not); anything else re-evaluates.
      if (self.following && self.out.scrollTop >= self.autoTop - 2) return;
      var wasFollowing = self.following;
      self.following = self.atBottom() && !self.detached;
      if (self.following !== wasFollowing) self.showState();
    });
    this.out.addEventListener("click", function (event) {
      var link = event.target.closest ? event.target.closest(".log-num") : null;
      if (!link) return;
      event.preventDefault();
      self.pickLine(Number(link.closest(".log-line").getAttribute("data-seq")), event.shiftKey);
    });
    this.buttons.earlier.addEventListener("click", function () { self.loadEarlier(); });
    this.buttons.later.addEventListener("click", function () { self.loadLater(); });
    this.buttons.latest.addEventListener("click", function () { self.jumpToLatest(); });
    this.buttons.start.addEventListener("click", function () { self.showAround(1, { top: true }); });
    this.buttons.next.addEventListener("click", function () { self.stepMatch(1); });
    this.buttons.prev.addEventListener("click", function () { self.stepMatch(-1); });
    this.searchForm.hidden = false;
    this.searchForm.addEventListener("submit", function (event) {
      event.preventDefault();
      self.submitSearch(false);
    });
    this.searchInput.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && event.shiftKey) {
        event.preventDefault();
        self.submitSearch(true);
      }
    });
    window.addEventListener("hashchange", function () { self.followHash(); });
    // The timeline's step names and the failure banner (which htmx re-renders) lead into the log.
    document.addEventListener("click", function (event) {
      var step = event.target.closest ? event.target.closest("[data-log-step]") : null;
      var failure = event.target.closest ? event.target.closest("[data-log-failure]") : null;
      if (!step && !failure) return;
      event.preventDefault();
      self.root.scrollIntoView({ block: "start" });
      if (failure) self.showFailure(failure.getAttribute("data-log-failure"), Number(failure.getAttribute("data-log-lines")) || 20);
      else self.showStep(step.getAttribute("data-log-step"));
    });
    this.setState("connecting", "Connecting…");
    this.renewToken()
      .then(function () { return self.followHash(true) || self.loadTail(); })
      .then(function () { self.schedule(0); })
      .catch(function (error) { self.fail(error); });
  };

  LogPanel.prototype.setState = function (state, text) {
    this.root.setAttribute("data-state", state);
    if (this.status.textContent !== text) this.status.textContent = text;
  };

  LogPanel.prototype.say = function (text) {
    // Announced (the status line is a live region) and shown until the next state change.
    this.status.textContent = text;
  };

  LogPanel.prototype.showState = function () {
    this.root.setAttribute("data-lines", String(this.count));
    var before = this.first !== null && this.top !== null && this.top > this.first;
    this.buttons.earlier.hidden = !before;
    this.buttons.start.hidden = !before;
    this.buttons.later.hidden = !this.detached;
    this.buttons.latest.hidden = !(this.detached || (!this.following && this.more));
    if (this.top !== null && this.serverLast !== null) {
      this.range.textContent = "Lines " + number(this.top) + "–" + number(this.bottom) + " of " + number(this.serverLast);
    } else {
      this.range.textContent = this.serverLast === null ? "No lines yet" : "";
    }
    if (this.stopped) return;
    if (!this.more && !this.detached) this.setState("complete", this.count ? "Complete" : "Complete · no output");
    else if (this.detached) this.setState("paused", this.more ? "Newer lines are not shown" : "Complete · later lines not shown");
    else if (!this.following) this.setState("paused", "Live · scrolled up, not following");
    else this.setState("live", "Live");
  };

  LogPanel.prototype.fail = function (error) {
    this.stopped = true;
    clearTimeout(this.pollTimer);
    this.setState("error", error && error.userMessage ? error.userMessage : "Logs could not be loaded.");
  };

  // The token: asked for with the session (this site), renewed before it expires or on a 401.
  LogPanel.prototype.renewToken = function () {
    var self = this;
    return fetch(this.tokenUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
    }).then(function (response) {
      if (!response.ok) {
        var error = new Error("token " + response.status);
        error.userMessage = response.status === 401 || response.status === 403
          ? "Your session has ended: log in again to read the logs."
          : "Logs are not available for this prebuild.";
        throw error;
      }
      return response.json();
    }).then(function (body) {
      self.token = body.token;
      var expiresIn = Number(body.expiresIn) || 3600;
      clearTimeout(self.renewTimer);
      var renewIn = Math.max(expiresIn - RENEW_BEFORE_S, expiresIn / 2);
      self.renewTimer = setTimeout(function () {
        self.renewToken().catch(function () { /* the next 401 retries */ });
      }, renewIn * 1000);
    });
  };

  // One read of the logs endpoint, with the token and never the cookie; a 401 renews once.
  LogPanel.prototype.read = function (params, retried) {
    var self = this;
    var query = Object.keys(params).map(function (k) {
      return encodeURIComponent(k) + "=" + encodeURIComponent(params[k]);
    }).join("&");
    return fetch(this.logsUrl + "?" + query, {
      method: "GET",
      credentials: "omit",
      cache: "no-store",
      headers: { Authorization: "Bearer " + this.token, Accept: "application/json" },
    }).then(function (response) {
      if (response.status === 401 && !retried) {
        return self.renewToken().then(function () { return self.read(params, true); });
      }
      if (!response.ok) {
        var error = new Error("logs " + response.status);
        error.status = response.status;
        error.userMessage = response.status === 404 || response.status === 401
          ? "Logs are not available for this prebuild."
          : "Logs could not be loaded (" + response.status + ").";
        throw error;
      }
      return response.json();
    }).then(function (body) {
      if (body.first !== undefined) self.first = body.first;
      if (body.last !== null && body.last !== undefined) self.serverLast = Math.max(self.serverLast || 0, body.last);
      self.more = !!body.more;
      self.noteStatus(body.statusVersion);
      return body;
    });
  };

  // The status card follows the log: refreshed as soon as an answer shows a newer status.
  LogPanel.prototype.noteStatus = function (version) {
    if (version === undefined || !window.htmx) return;
    var card = document.getElementById("prebuild-status");
    if (!card || !card.hasAttribute("data-status-version") || !card.hasAttribute("hx-get")) return;
    if (Number(card.getAttribute("data-status-version")) >= version) return;
    var now = Date.now();
    if (now - this.statusAskedAt < 400) return; // one ask in flight is enough
    this.statusAskedAt = now;
    window.htmx.trigger(document.body, "prebuild-status");
  };

  LogPanel.prototype.loadTail = function () {
    var self = this;
    return this.read({ tail: TAIL }).then(function (body) {
      self.clear();
      self.append(body.lines || []);
      self.following = true;
      self.detached = false;
      self.scrollToEnd();
      self.showState();
    });
  };

  LogPanel.prototype.schedule = function (delay) {
    var self = this;
    if (this.stopped) return;
    clearTimeout(this.pollTimer);
    this.pollTimer = setTimeout(function () { self.poll(); }, delay);
  };

  LogPanel.prototype.poll = function () {
    var self = this;
    if (this.busy) return this.schedule(POLL_MS);
    this.busy = true;
    var request;
    if (this.detached) {
      // Only learn whether lines keep coming; the reader is looking at earlier ones.
      request = this.read({ tail: 1 }).then(function () { return false; });
    } else if (this.following && this.serverLast !== null && this.bottom !== null &&
               this.serverLast - this.bottom > MAX_LINES) {
      // Far behind (a very chatty build): skip to the end rather than render what would be dropped.
      request = this.loadTail().then(function () { return false; });
    } else {
      var after = this.bottom === null ? 0 : this.bottom; // sequence numbers start at 1
      request = this.read({ after: after, limit: PAGE }).then(function (body) {
        var lines = body.lines || [];
        self.append(lines);
        return lines.length >= PAGE; // a full page: more is waiting right now
      });
    }
    request.then(function (full) {
      self.busy = false;
      self.failures = 0;
      self.showState();
      if (full) return self.schedule(0);
      if (self.more || self.detached) return self.schedule(document.hidden ? HIDDEN_POLL_MS : POLL_MS);
      // The prebuild has finished and every line is here (or on demand): stop polling.
      clearTimeout(self.renewTimer);
    }).catch(function (error) {
      self.busy = false;
      if (error && error.status) return self.fail(error);
      // A network error: keep trying, a little slower each time.
      self.failures += 1;
      self.setState("reconnecting", "Reconnecting…");
      self.schedule(Math.min(POLL_MS * Math.pow(2, self.failures), 10000));
    });
  };

  // Run `work` (a function returning a promise) once nothing else reads; the poll waits meanwhile.
  LogPanel.prototype.exclusive = function (work) {
    var self = this;
    if (this.busy) {
      return new Promise(function (resolve) { setTimeout(resolve, 50); }).then(function () { return self.exclusive(work); });
    }
    this.busy = true;
    return Promise.resolve().then(work).then(function (value) {
      self.busy = false;
      self.showState();
      return value;
    }, function (error) {
      self.busy = false;
      self.setState("error", (error && error.userMessage) || "Lines could not be loaded.");
      throw error;
    });
  };

  LogPanel.prototype.loadEarlier = function () {
    var self = this;
    if (this.top === null) return Promise.resolve();
    this.buttons.earlier.disabled = true;
    return this.exclusive(function () {
      return self.read({ before: self.top, limit: EARLIER }).then(function (body) {
        self.prepend(body.lines || []);
        if (self.count > MAX_DETACHED) {
          self.trimBottom(self.count - MAX_DETACHED);
          self.detached = true;
          self.following = false;
        }
      });
    }).catch(function () {}).then(function () { self.buttons.earlier.disabled = false; });
  };

  LogPanel.prototype.loadLater = function () {
    var self = this;
    if (this.bottom === null) return Promise.resolve();
    return this.exclusive(function () {
      return self.read({ after: self.bottom, limit: EARLIER }).then(function (body) {
        self.appendDetached(body.lines || []);
      });
    }).catch(function () {});
  };

  LogPanel.prototype.jumpToLatest = function () {
    var self = this;
    this.highlight = null;
    return this.exclusive(function () { return self.loadTail(); }).then(function () { self.schedule(0); }, function () {});
  };

  // Lines after the window while reading elsewhere: added below, the oldest dropped past the cap;
  // once the window reaches the newest line the panel follows the end again.
  LogPanel.prototype.appendDetached = function (lines) {
    var wasFollowing = this.following;
    this.following = false;
    this.append(lines);
    if (this.count > MAX_DETACHED) this.trimTop(this.count - MAX_DETACHED);
    this.following = wasFollowing;
    if (this.serverLast !== null && this.bottom !== null && this.bottom >= this.serverLast) this.detached = false;
  };

  // Show the window around `seq` (already in the DOM: just scroll there), then scroll to it.
  LogPanel.prototype.showAround = function (seq, options) {
    var self = this;
    options = options || {};
    return this.exclusive(function () {
      if (self.top !== null && seq >= self.top && seq <= self.bottom) return null;
      return self.read({ after: Math.max(0, seq - (options.top ? 1 : BEFORE)), limit: WINDOW }).then(function (body) {
        self.clear();
        self.following = false;
        self.append(body.lines || []);
        self.detached = self.bottom !== null && self.serverLast !== null && self.bottom < self.serverLast;
        if (!self.detached) self.following = false;
      });
    }).then(function () {
      self.following = false;
      self.scrollToSeq(seq, options.top);
      self.showState();
    });
  };

  LogPanel.prototype.lineOf = function (seq) {
    return this.out.querySelector('.log-line[data-seq="' + seq + '"]');
  };

  LogPanel.prototype.scrollToSeq = function (seq, atTop) {
    var line = this.lineOf(seq);
    if (!line) return;
    var offset = line.getBoundingClientRect().top - this.out.getBoundingClientRect().top;
    this.out.scrollTop += atTop ? offset - 40 : offset - this.out.clientHeight / 3;
    this.autoTop = this.out.scrollTop;
  };

  // --- lines picked: a link to a line or a range, the failing lines ------------------------------

  LogPanel.prototype.followHash = function (initial) {
    var match = LINE_HASH.exec(location.hash);
    if (!match) return null;
    var from = Number(match[1]);
    var to = Number(match[2] || match[1]);
    if (to < from) { var swap = from; from = to; to = swap; }
    this.setHighlight({ from: from, to: to, kind: "picked" });
    if (initial) this.root.scrollIntoView({ block: "start" });
    var self = this;
    return this.showAround(from).then(function () {
      if (!self.lineOf(from)) {
        // A link past the end (or into a log since cut short): say so, and show the end.
        self.highlight = null;
        return self.exclusive(function () { return self.loadTail(); }).then(function () {
          self.say("The log has no line " + number(from) + (self.serverLast ? "; it has " + number(self.serverLast) + "." : "."));
        });
      }
      self.say(from === to ? "Showing line " + number(from) : "Showing lines " + number(from) + "–" + number(to));
    });
  };

  LogPanel.prototype.pickLine = function (seq, extend) {
    var from = seq;
    var to = seq;
    if (extend && this.anchor !== null) {
      from = Math.min(this.anchor, seq);
      to = Math.max(this.anchor, seq);
    } else {
      this.anchor = seq;
    }
    this.setHighlight({ from: from, to: to, kind: "picked" });
    // The address names the line (a link to share); replaceState, so no jump and no history entry.
    history.replaceState(null, "", from === to ? "#L" + from : "#L" + from + "-L" + to);
  };

  LogPanel.prototype.setHighlight = function (highlight) {
    this.highlight = highlight;
    var lines = this.out.querySelectorAll(".log-line");
    for (var i = 0; i < lines.length; i++) this.decorate(lines[i], Number(lines[i].getAttribute("data-seq")), lines[i].getAttribute("data-step"));
  };

  LogPanel.prototype.outline = function () {
    var self = this;
    return this.read({ outline: 1 }).then(function (body) {
      var steps = {};
      (body.steps || []).forEach(function (step) { steps[step.name] = step; });
      self.steps = steps;
      return steps;
    });
  };

  LogPanel.prototype.showStep = function (name) {
    var self = this;
    return this.outline().then(function (steps) {
      var step = steps[name];
      if (!step) {
        self.say("The step " + name + " wrote no lines.");
        return;
      }
      history.replaceState(null, "", "#L" + step.first);
      self.setHighlight({ from: step.first, to: step.first, kind: "picked" });
      return self.showAround(step.first, { top: true }).then(function () {
        self.say("Showing " + name + " from line " + number(step.first) + " (" + number(step.lines) + " lines)");
        self.out.focus({ preventScroll: true });
      });
    }).catch(function (error) { self.setState("error", (error && error.userMessage) || "The step could not be found."); });
  };

  // The failing step's last lines (or the log's last lines when no step failed), marked as failing.
  LogPanel.prototype.showFailure = function (name, n) {
    var self = this;
    return this.outline().then(function (steps) {
      var step = name ? steps[name] : null;
      var last = step ? step.last : self.serverLast;
      if (!last) {
        self.say("The prebuild wrote no lines before it failed.");
        return;
      }
      var from = Math.max(step ? step.first : 1, last - n + 1);
      self.setHighlight({ from: from, to: last, step: step ? step.name : null, kind: "failing" });
      history.replaceState(null, "", "#L" + from + "-L" + last);
      return self.showAround(last).then(function () {
        self.scrollToSeq(from, true);
        self.say((step ? "The last lines of " + step.name : "The last lines") + ": " + number(from) + "–" + number(last));
        self.out.focus({ preventScroll: true });
      });
    }).catch(function (error) { self.setState("error", (error && error.userMessage) || "The failing lines could not be found."); });
  };

  // --- search -------------------------------------------------------------------------------------

  LogPanel.prototype.submitSearch = function (backwards) {
    var query = this.searchInput.value;
    if (!query.trim()) {
      this.clearSearch();
      return;
    }
    if (this.search && this.search.query === query && this.search.total) return this.stepMatch(backwards ? -1 : 1);
    var self = this;
    this.matchesText.textContent = "Searching…";
    this.read({ q: query }).then(function (body) {
      self.search = {
        query: query,
        matches: body.matches || [],
        set: {},
        total: body.total || 0,
        complete: body.complete !== false,
        searchedTo: body.last,
        index: -1,
      };
      self.search.matches.forEach(function (seq) { self.search.set[seq] = true; });
      self.buttons.next.disabled = self.buttons.prev.disabled = !self.search.total;
      if (!self.search.total) {
        self.matchesText.textContent = "No line contains “" + query + "”" + (self.search.complete ? "." : " (the log's start searched).");
        self.setHighlight(self.highlight);
        return;
      }
      return self.goToMatch(0);
    }).catch(function (error) {
      self.matchesText.textContent = (error && error.userMessage) || "The search failed.";
    });
  };

  LogPanel.prototype.clearSearch = function () {
    this.search = null;
    this.matchesText.textContent = "";
    this.buttons.next.disabled = this.buttons.prev.disabled = true;
    this.setHighlight(this.highlight);
  };

  LogPanel.prototype.stepMatch = function (delta) {
    var search = this.search;
    if (!search || !search.total) return;
    var index = search.index + delta;
    if (index >= search.matches.length) {
      if (search.matches.length < search.total) return this.fetchMoreMatches().then(this.goToMatch.bind(this, index));
      index = 0; // wrap to the first
    }
    if (index < 0) index = search.matches.length < search.total ? 0 : search.matches.length - 1;
    return this.goToMatch(index);
  };

  LogPanel.prototype.fetchMoreMatches = function () {
    var search = this.search;
    return this.read({ q: search.query, after: search.matches[search.matches.length - 1] }).then(function (body) {
      (body.matches || []).forEach(function (seq) {
        search.matches.push(seq);
        search.set[seq] = true;
      });
    });
  };

  LogPanel.prototype.goToMatch = function (index) {
    var search = this.search;
    if (!search || index >= search.matches.length) return;
    search.index = index;
    var seq = search.matches[index];
    var self = this;
    return this.showAround(seq).then(function () {
      self.setHighlight(self.highlight);
      self.matchesText.textContent = "Match " + number(index + 1) + " of " + number(search.total) +
        (search.complete ? "" : "+") + " · line " + number(seq);
    });
  };

  // --- DOM -----------------------------------------------------------------------------------------

  LogPanel.prototype.clear = function () {
    this.out.textContent = "";
    this.top = this.bottom = null;
    this.count = 0;
  };

  LogPanel.prototype.newGroup = function (step) {
    var group = document.createElement("div");
    group.className = "log-group";
    group.setAttribute("data-step", step);
    var header = document.createElement("div");
    header.className = "log-step";
    header.setAttribute("role", "heading");
    header.setAttribute("aria-level", "3");
    header.textContent = step || "Output";
    var body = document.createElement("div");
    body.className = "log-lines";
    group.appendChild(header);
    group.appendChild(body);
    return group;
  };

  LogPanel.prototype.lineElement = function (line) {
    var el = document.createElement("div");
    var classes = "log-line";
    if (line.stream === "stderr") {
      classes += " stderr";
      if (line.step === "clone" && GIT_PROGRESS.test(lastWritten(String(line.text)))) classes += " progress";
    }
    el.className = classes;
    el.setAttribute("data-seq", String(line.seq));
    el.setAttribute("data-step", line.step || "");
    var num = document.createElement("a");
    num.className = "log-num";
    num.href = "#L" + line.seq;
    num.tabIndex = -1; // thousands of them: the search and the step links are the keyboard's way in
    num.textContent = String(line.seq);
    el.appendChild(num);
    var time = document.createElement("span");
    time.className = "log-time";
    if (line.time) {
      time.textContent = utcTime(line.time);
      time.title = utcStamp(line.time);
    }
    el.appendChild(time);
    var text = document.createElement("span");
    text.className = "log-text";
    renderAnsi(text, line.text);
    el.appendChild(text);
    this.decorate(el, line.seq, line.step || "");
    return el;
  };

  // A line's marks: picked or failing (the highlighted range), a search match, the current match.
  LogPanel.prototype.decorate = function (el, seq, step) {
    var h = this.highlight;
    var inRange = !!h && seq >= h.from && seq <= h.to && (!h.step || h.step === step);
    el.classList.toggle("picked", inRange && h.kind === "picked");
    el.classList.toggle("failing", inRange && h.kind === "failing");
    var search = this.search;
    var isMatch = !!search && !!search.set[seq];
    var isCurrent = isMatch && search.matches[search.index] === seq;
    el.classList.toggle("match", isMatch);
    var wasCurrent = el.classList.contains("current-match");
    el.classList.toggle("current-match", isCurrent);
    var text = el.querySelector(".log-text");
    if (wasCurrent && !isCurrent && text) {
      text.querySelectorAll("mark").forEach(function (mark) { mark.replaceWith(document.createTextNode(mark.textContent)); });
      text.normalize();
    }
    if (isCurrent && !wasCurrent && text) markText(text, search.query);
  };

  // Split lines (oldest first) into runs of the same step.
  function runs(lines) {
    var result = [];
    for (var i = 0; i < lines.length; i++) {
      var step = lines[i].step || "";
      if (!result.length || result[result.length - 1].step !== step) result.push({ step: step, lines: [] });
      result[result.length - 1].lines.push(lines[i]);
    }
    return result;
  }

  LogPanel.prototype.append = function (lines) {
    if (this.bottom !== null) lines = lines.filter(function (l) { return l.seq > this.bottom; }, this);
    if (!lines.length) return;
    var fragment = document.createDocumentFragment();
    var lastGroup = this.out.lastElementChild;
    var self = this;
    runs(lines).forEach(function (run, index) {
      var body;
      if (index === 0 && lastGroup && lastGroup.getAttribute("data-step") === run.step) {
        body = lastGroup.lastElementChild; // continues the step already shown
        var continued = document.createDocumentFragment();
        run.lines.forEach(function (line) { continued.appendChild(self.lineElement(line)); });
        body.appendChild(continued);
        return;
      }
      var group = self.newGroup(run.step);
      body = group.lastElementChild;
      run.lines.forEach(function (line) { body.appendChild(self.lineElement(line)); });
      fragment.appendChild(group);
    });
    this.out.appendChild(fragment);
    if (this.top === null) this.top = lines[0].seq;
    this.bottom = lines[lines.length - 1].seq;
    this.count += lines.length;
    if (this.following) {
      if (this.count > MAX_LINES) this.trimTop(this.count - MAX_LINES);
      this.scrollToEnd();
    } else if (this.count > MAX_DETACHED) {
      // The reader is elsewhere and the DOM is full: stop adding until they jump to the end.
      this.detached = true;
    }
  };

  LogPanel.prototype.prepend = function (lines) {
    if (this.top !== null) lines = lines.filter(function (l) { return l.seq < this.top; }, this);
    if (!lines.length) return;
    var before = this.out.scrollHeight;
    var firstGroup = this.out.firstElementChild;
    var groups = runs(lines);
    var self = this;
    var tail = groups[groups.length - 1];
    if (firstGroup && firstGroup.getAttribute("data-step") === tail.step) {
      groups.pop();
      var fragment = document.createDocumentFragment();
      tail.lines.forEach(function (line) { fragment.appendChild(self.lineElement(line)); });
      var body = firstGroup.lastElementChild;
      body.insertBefore(fragment, body.firstChild);
    }
    var head = document.createDocumentFragment();
    groups.forEach(function (run) {
      var group = self.newGroup(run.step);
      run.lines.forEach(function (line) { group.lastElementChild.appendChild(self.lineElement(line)); });
      head.appendChild(group);
    });
    this.out.insertBefore(head, this.out.firstChild);
    this.top = lines[0].seq;
    if (this.bottom === null) this.bottom = lines[lines.length - 1].seq;
    this.count += lines.length;
    // Keep the lines the reader was looking at where they were.
    this.out.scrollTop += this.out.scrollHeight - before;
    this.autoTop = this.out.scrollTop;
  };

  LogPanel.prototype.trimTop = function (n) {
    var before = this.out.scrollHeight;
    while (n > 0 && this.out.firstElementChild) {
      var group = this.out.firstElementChild;
      var body = group.lastElementChild;
      while (n > 0 && body.firstElementChild) {
        body.removeChild(body.firstElementChild);
        n -= 1;
        this.count -= 1;
      }
      if (!body.firstElementChild) this.out.removeChild(group);
    }
    var first = this.out.querySelector(".log-line");
    this.top = first ? Number(first.getAttribute("data-seq")) : null;
    if (!this.following) this.out.scrollTop -= before - this.out.scrollHeight;
  };

  LogPanel.prototype.trimBottom = function (n) {
    while (n > 0 && this.out.lastElementChild) {
      var group = this.out.lastElementChild;
      var body = group.lastElementChild;
      while (n > 0 && body.lastElementChild) {
        body.removeChild(body.lastElementChild);
        n -= 1;
        this.count -= 1;
      }
      if (!body.lastElementChild) this.out.removeChild(group);
    }
    var lines = this.out.querySelectorAll(".log-group:last-child .log-line");
    this.bottom = lines.length ? Number(lines[lines.length - 1].getAttribute("data-seq")) : null;
  };

  LogPanel.prototype.atBottom = function (slack) {
    var out = this.out;
    return out.scrollHeight - out.scrollTop - out.clientHeight <= (slack === undefined ? 24 : slack);
  };

  LogPanel.prototype.scrollToEnd = function () {
    this.out.scrollTop = this.out.scrollHeight;
    this.autoTop = this.out.scrollTop;
  };

  function init() {
    var panels = document.querySelectorAll("section.logs[data-logs-url][data-token-url]");
    for (var i = 0; i < panels.length; i++) {
      if (panels[i].getAttribute("data-started")) continue;
      panels[i].setAttribute("data-started", "1");
      new LogPanel(panels[i]).start();
    }
  }

  // Exposed for the browser tests of the ANSI rendering; nothing else uses it.
  window.prebuildLogs = { renderAnsi: renderAnsi };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
