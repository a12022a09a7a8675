/*
 * The live log panel of a prebuild's page (templates/prebuilds/detail.html).
 *
 * It asks the dashboard for a logs token (POST data-token-url, with the session and CSRF header),
 * then reads the logs endpoint (data-logs-url) with that token only: fetch with credentials
 * "omit", so the session cookie never reaches the logs endpoint. Contract of the endpoint:
 *   GET <logs-url>?tail=n | ?after=seq&limit=n | ?before=seq&limit=n, Authorization: Bearer <token>
 *   -> {lines: [{seq, step, stream, text}], first, last, more, phase}; 401 for a bad token.
 *
 * Log text is untrusted: it only ever reaches the page as text nodes (never innerHTML). ANSI SGR
 * colours (30-37, 90-97, bold, reset) become spans with classes; every other escape is dropped.
 * A big log stays fast because only a window of it is in the DOM: the last TAIL lines to start,
 * earlier ones on demand, and at most MAX_LINES line elements while following the end.
 */
(function () {
  "use strict";

  var TAIL = 1000; // lines shown when the panel opens
  var PAGE = 2000; // lines per request while catching up
  var EARLIER = 1000; // lines per "Load earlier lines"
  var POLL_MS = 500; // live lines are at most about this far behind
  var HIDDEN_POLL_MS = 2000; // a background tab polls less often
  var MAX_LINES = 5000; // DOM cap while following the end
  var MAX_DETACHED = 2 * MAX_LINES; // DOM cap while reading elsewhere
  var RENEW_BEFORE_S = 600; // renew the one-hour token ten minutes before it expires

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

  function renderAnsi(parent, raw) {
    var text = String(raw == null ? "" : raw);
    if (text.indexOf("\r") !== -1) {
      // A terminal shows what was written after the last carriage return (progress bars).
      var parts = text.split("\r").filter(function (p) { return p !== "" && p !== "\n"; });
      text = parts.length ? parts[parts.length - 1] : "";
    }
    text = text.replace(CONTROL, "");
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
    this.earlierButton = root.querySelector('[data-log-action="earlier"]');
    this.latestButton = root.querySelector('[data-log-action="latest"]');
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
    this.earlierButton.addEventListener("click", function () { self.loadEarlier(); });
    this.latestButton.addEventListener("click", function () { self.jumpToLatest(); });
    this.setState("connecting", "Connecting…");
    this.renewToken()
      .then(function () { return self.loadTail(); })
      .then(function () { self.schedule(0); })
      .catch(function (error) { self.fail(error); });
  };

  LogPanel.prototype.setState = function (state, text) {
    this.root.setAttribute("data-state", state);
    this.status.textContent = text;
  };

  LogPanel.prototype.showState = function () {
    this.root.setAttribute("data-lines", String(this.count));
    this.earlierButton.hidden = !(this.first !== null && this.top !== null && this.top > this.first);
    this.latestButton.hidden = !(this.detached || (!this.following && this.more));
    if (this.stopped) return;
    if (!this.more && !this.detached) this.setState("complete", this.count ? "Complete" : "Complete · no output");
    else if (this.detached) this.setState("paused", "Newer lines are not shown");
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
      self.first = body.first;
      if (body.last !== null && body.last !== undefined) self.serverLast = body.last;
      self.more = !!body.more;
      return body;
    });
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
      // The prebuild has finished and every line is here (or on demand above): stop polling.
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

  LogPanel.prototype.loadEarlier = function () {
    var self = this;
    if (this.top === null || this.busy) return;
    this.busy = true;
    this.earlierButton.disabled = true;
    this.read({ before: this.top, limit: EARLIER }).then(function (body) {
      self.prepend(body.lines || []);
      if (self.count > MAX_DETACHED) {
        self.trimBottom(self.count - MAX_DETACHED);
        self.detached = true;
        self.following = false;
      }
    }).catch(function (error) {
      self.setState("error", (error && error.userMessage) || "Earlier lines could not be loaded.");
    }).then(function () {
      self.busy = false;
      self.earlierButton.disabled = false;
      self.showState();
    });
  };

  LogPanel.prototype.jumpToLatest = function () {
    var self = this;
    this.busy = true;
    this.loadTail().then(function () {
      self.busy = false;
      self.schedule(0);
    }).catch(function (error) { self.busy = false; self.fail(error); });
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
    el.className = line.stream === "stderr" ? "log-line stderr" : "log-line";
    el.setAttribute("data-seq", String(line.seq));
    renderAnsi(el, line.text);
    return el;
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
