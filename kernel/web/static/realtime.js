// The page's one realtime connection (/ws), shared by the kernel and every plugin's scripts.
//
//   everything.realtime.on("calls.incoming", (message) => ...);
//   everything.realtime.request({type: "spaces.join", space_id: 7, sdp}).then((reply) => ...);
//
// It reconnects at once when the server restarts (close code 1012, or 1001),
// so that a deploy moves the page to another process without a pause; with a
// growing pause when the connection drops otherwise. It keeps the
// notification badge up to date.
(function () {
  "use strict";
  const handlers = new Map();
  const pending = new Map();
  let socket = null;
  let nextId = 1;
  let pause = 1000;
  let queue = [];

  function emit(type, message) {
    for (const handler of handlers.get(type) || []) {
      try { handler(message); } catch (error) { console.error("realtime handler for", type, "failed:", error); }
    }
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(scheme + "//" + location.host + "/ws");
    let greeted = false;
    socket.addEventListener("open", () => {
      pause = 1000;
      const waiting = queue;
      queue = [];
      waiting.forEach((text) => socket.send(text));
      emit("open", {});
    });
    socket.addEventListener("message", (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch (error) { return; }
      if (message.type === "kernel.hello") greeted = true;
      // Whatever names a pending request's id answers it: a reply, a typed answer
      // (kernel.pong, spaces.joined) or an error.
      if (message.ref !== undefined && message.ref !== null && pending.has(message.ref)) {
        const { resolve, reject } = pending.get(message.ref);
        pending.delete(message.ref);
        (message.type === "error" ? reject : resolve)(message);
      }
      emit(message.type, message);
    });
    socket.addEventListener("close", (event) => {
      // Answers to requests sent on this socket will never come.
      for (const { reject } of pending.values()) reject({ type: "error", code: "disconnected", message: "The connection dropped." });
      pending.clear();
      emit("close", { code: event.code });
      // Signed out (4401) or refused (4403): reconnecting would not help.
      if (event.code === 4401 || event.code === 4403) return;
      // The server restarts or stops (a deploy): another process takes the page at once. A socket
      // refused that way before its greeting (a draining process) waits like any other: nothing spins.
      if (greeted && (event.code === 1012 || event.code === 1001)) {
        connect();
        return;
      }
      setTimeout(connect, pause);
      pause = Math.min(pause * 2, 30000);
    });
  }

  function send(message) {
    const text = JSON.stringify(message);
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(text);
    else queue.push(text);
  }

  const realtime = {
    on(type, handler) {
      if (!handlers.has(type)) handlers.set(type, []);
      handlers.get(type).push(handler);
    },
    send,
    // Send a message and wait for its reply (resolved) or error (rejected).
    request(message) {
      const id = "m" + nextId++;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        send(Object.assign({}, message, { id }));
      });
    },
  };

  function showUnread(count) {
    document.querySelectorAll("[data-unread-count]").forEach((badge) => {
      badge.textContent = String(count);
      badge.hidden = !count;
    });
  }

  realtime.on("kernel.hello", (message) => { if (typeof message.unread === "number") showUnread(message.unread); });
  realtime.on("kernel.notifications_read", (message) => showUnread(message.unread));
  realtime.on("kernel.notification", (message) => {
    showUnread(message.unread);
    const list = document.querySelector("[data-live-notifications]");
    if (!list) return;
    const item = document.createElement("li");
    item.className = "notification unread";
    const link = document.createElement("a");
    link.className = "grow";
    link.href = message.notification.url || "#";
    link.textContent = message.notification.text;  // text, never HTML: it came from other people
    item.appendChild(link);
    list.prepend(item);
  });

  window.everything = Object.assign(window.everything || {}, { realtime });
  connect();
})();
