// The environment terminal: xterm.js (served from our static files) over the websocket of
// warmpools/terminal.py. Binary frames carry the terminal's bytes; text frames are JSON control
// messages ({"type": "resize"} from here; {"type": "exit"} or {"type": "idle"} from the server).
const panel = document.getElementById("environment-terminal");
const state = document.getElementById("terminal-state");

// xterm.js writes its styles into <style> elements, which the Content-Security-Policy
// (style-src 'self') refuses. Their text goes into constructed style sheets instead, which the
// policy allows. For as long as the page lives: xterm.js makes
// some of them after open(), when its renderer starts.
const createElement = document.createElement.bind(document);
document.createElement = (name, options) => {
  if (String(name).toLowerCase() !== "style") return createElement(name, options);
  // Even an empty <style> is checked against the policy (and refused), so xterm.js gets an inert
  // <template> in its place, whose text is never drawn.
  const element = createElement("template");
  {
    const sheet = new CSSStyleSheet();
    document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
    let text = "";
    Object.defineProperty(element, "textContent", {
      get: () => text,
      set: (value) => { text = String(value); sheet.replaceSync(text); },
    });
    const remove = element.remove.bind(element);
    element.remove = () => {
      document.adoptedStyleSheets = document.adoptedStyleSheets.filter((s) => s !== sheet);
      remove();
    };
  }
  return element;
};

// Its DOM renderer colours some cells with setAttribute("style", ...), which the policy refuses
// too; the same declarations set through the CSSOM (element.style) are allowed, and mean the same
// (on this page only: the module is loaded by the terminal panel).
const setAttribute = Element.prototype.setAttribute;
Element.prototype.setAttribute = function (name, value) {
  if (String(name).toLowerCase() === "style" && this.style) {
    this.style.cssText = String(value);
    return;
  }
  return setAttribute.call(this, name, value);
};

async function start() {
  const { Terminal } = await import(panel.dataset.xterm);
  const { FitAddon } = await import(panel.dataset.fit);
  const term = new Terminal({ cursorBlink: true, fontSize: 14, scrollback: 5000 });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(panel);
  fit.fit();
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}${panel.dataset.socket}`);
  socket.binaryType = "arraybuffer";
  const encoder = new TextEncoder();
  let ended = false;
  const sendSize = () => {
    if (socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: "resize", rows: term.rows, cols: term.cols }));
    }
  };
  socket.addEventListener("open", () => {
    state.textContent = "Connected.";
    sendSize();
    term.focus();
  });
  socket.addEventListener("message", (event) => {
    if (typeof event.data !== "string") {
      term.write(new Uint8Array(event.data));
      return;
    }
    const message = JSON.parse(event.data);
    if (message.type === "exit") {
      ended = true;
      state.textContent = `The session ended (the shell exited with status ${message.code}).`;
    } else if (message.type === "idle") {
      ended = true;
      state.textContent = `The session ended after ${Math.round(message.seconds / 60)} minutes without input.`;
    }
  });
  socket.addEventListener("close", () => {
    if (!ended) state.textContent = "The session ended (the connection closed).";
    panel.dataset.ended = "true";
    term.options.disableStdin = true;
  });
  term.onData((data) => {
    if (socket.readyState === WebSocket.OPEN) socket.send(encoder.encode(data));
  });
  term.onResize(sendSize);
  new ResizeObserver(() => fit.fit()).observe(panel);
  // For tests and the curious: the page's terminal object.
  panel.terminal = term;
}

start().catch((error) => {
  state.textContent = `The terminal could not start: ${error}`;
});
