// Spaces in the browser: the "Start a Space" form and the Space page ([data-space-page]).
//
// The protocol is docs/spaces-protocol.md over the page's shared socket (everything.realtime):
//
//   Join:    RTCPeerConnection (listener: one audio transceiver, recvonly; host and speakers: the
//            microphone, sendrecv) → offer → wait for ICE gathering (the server takes no trickled
//            candidates) → spaces.join {space_id, sdp} → spaces.joined {sdp: answer}.
//   Stage:   spaces.state re-draws the page; spaces.speaking rings the speakers; spaces.reaction floats.
//   Invited: when the viewer's role becomes host, cohost or speaker while their peer only receives,
//            the page asks for the microphone and sends spaces.join again, on the same socket, with a
//            new sendrecv peer; the server swaps the peer and keeps role, mute and hand.
//
// Every rule is the server's: a refused action shows the server's message in the status line.
// Tests reach the live peer connection as window.spacesPeer.
(function () {
  "use strict";

  const ON_STAGE = new Set(["host", "cohost", "speaker"]);
  const MODERATORS = new Set(["host", "cohost"]);
  const ICE_WAIT_MS = 5000;
  const POLL_MS = 15000;  // how often a page that has not joined refreshes the Space
  const LEFT = {
    left: "You left the Space.",
    removed: "You were removed from this Space.",
    joined_elsewhere: "You joined this Space in another tab.",
  };

  function element(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes || {})) {
      if (value === false || value === null || value === undefined) continue;
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children) if (child) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    return node;
  }

  function same(a, b) { return String(a || "").toLowerCase() === String(b || "").toLowerCase(); }
  function nameOf(user) { return (user && (user.display_name || user.username)) || "Someone"; }

  function localTime(node) {
    const moment = new Date(node.getAttribute("datetime"));
    if (isNaN(moment) || typeof Intl === "undefined") return;
    node.title = node.textContent;
    node.textContent = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" }).format(moment);
  }

  // The start form ---------------------------------------------------------------------------

  // The picker shows the reader's own time; the server learns the offset to turn it into UTC.
  function startForm(form) {
    const zone = form.querySelector("[data-spaces-tz]");
    if (zone) zone.value = String(new Date().getTimezoneOffset());
    const label = form.querySelector("[data-spaces-zone]");
    if (label) label.textContent = "your time";
    const picker = form.querySelector("[data-spaces-start]");
    const local = (date) => new Date(date.getTime() - date.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
    if (picker) {
      for (const bound of ["min", "max"]) {
        const utc = picker.getAttribute(bound);
        if (utc) picker.setAttribute(bound, local(new Date(utc + ":00Z")));
      }
    }
    // One Space per press, however many times it is pressed.
    form.addEventListener("submit", (event) => {
      if (form.dataset.sending) { event.preventDefault(); return; }
      form.dataset.sending = "1";
      setTimeout(() => form.querySelectorAll("button").forEach((button) => { button.disabled = true; }), 0);
    });
    addEventListener("pageshow", () => {
      delete form.dataset.sending;
      form.querySelectorAll("button").forEach((button) => { button.disabled = false; });
    });
  }

  // The Space page ---------------------------------------------------------------------------

  function spacePage(root, realtime) {
    const data = JSON.parse(root.querySelector("[data-space-data]").textContent);
    const me = data.me;
    const roles = data.roles;
    const q = (selector) => root.querySelector(selector);
    const ui = {
      status: q("[data-spaces-status]"), rec: q("[data-spaces-rec]"), line: q("[data-spaces-line]"),
      stage: q("[data-spaces-stage]"), hands: q("[data-spaces-hands]"), handsSection: q("[data-spaces-hands-section]"),
      listeners: q("[data-spaces-listeners]"), count: q("[data-listener-count]"), float: q("[data-spaces-float]"),
      ended: q("[data-spaces-ended]"), recordings: q("[data-spaces-recordings]"), controls: q("[data-spaces-controls]"),
      join: q("[data-spaces-join]"), leave: q("[data-spaces-leave]"), hand: q("[data-spaces-hand]"), mute: q("[data-spaces-mute]"),
      stepdown: q("[data-spaces-stepdown]"), record: q("[data-spaces-record]"), react: q("[data-spaces-react]"),
      audio: q("[data-spaces-audio]"), startForm: q("[data-spaces-start-form]"), endForm: q("[data-spaces-end-form]"),
      notStarted: q("[data-spaces-not-started]"), when: q("[data-spaces-when]"),
    };
    const state = {
      space: data.space, id: data.space.id, joined: false, joining: false, pc: null, mic: null,
      speaking: new Set(), upgrading: false, openMenu: null,
    };

    const hostName = () => state.space.host && state.space.host.username;
    const isHost = () => same(hostName(), me);
    function mine() {
      const all = [...(state.space.stage || []), ...(state.space.listeners || [])];
      return all.find((entry) => same(entry.user.username, me)) || null;
    }
    // The state names every one on stage but only the first listeners: someone in the Space and not named is a listener.
    const myRole = () => { const entry = mine(); return state.joined ? (entry ? entry.role : "listener") : null; };
    const myHandUp = () => (state.space.hands || []).some((name) => same(name, me));

    function say(text, isError, link) {
      ui.line.classList.toggle("error", Boolean(isError));
      ui.line.replaceChildren(text || "");
      if (link) ui.line.append(" ", element("a", { href: link.href, text: link.text }));
    }

    function refused(error) {
      if (error && error.code === "premium_required") {
        say(error.message || "Recording Spaces is a premium feature. Subscribe to gain access.", true, { href: error.upgrade_url || "/premium", text: "See plans" });
      } else {
        say((error && error.message) || "That didn't work. Try again.", true);
      }
    }

    // A button's message goes out once: the button waits for the answer before it can be pressed again.
    async function act(button, message) {
      if (button && button.dataset.busy) return null;
      if (button) { button.dataset.busy = "1"; button.disabled = true; button.setAttribute("aria-busy", "true"); }
      try {
        const reply = await realtime.request(Object.assign({ space_id: state.id }, message));
        if (ui.line.classList.contains("error")) say("");
        return reply;
      } catch (error) {
        refused(error);
        return null;
      } finally {
        if (button) { delete button.dataset.busy; button.disabled = false; button.removeAttribute("aria-busy"); }
      }
    }

    // Media ------------------------------------------------------------------------------------

    function gathered(pc) {
      if (pc.iceGatheringState === "complete") return Promise.resolve();
      return new Promise((resolve) => {
        const timer = setTimeout(resolve, ICE_WAIT_MS);
        pc.addEventListener("icegatheringstatechange", () => {
          if (pc.iceGatheringState === "complete") { clearTimeout(timer); resolve(); }
        });
      });
    }

    async function microphone() {
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) throw { message: "This browser can't use a microphone here (it needs https)." };
      try {
        return await navigator.mediaDevices.getUserMedia({ audio: true });
      } catch (error) {
        throw { message: error && error.name === "NotAllowedError" ? "Allow this site to use your microphone to speak." : "No microphone was found." };
      }
    }

    // A new peer (with the microphone when given), offered to the server; resolves once the answer is set.
    async function connect(mic) {
      if (!window.RTCPeerConnection) throw { message: "This browser can't play Spaces." };
      const pc = new RTCPeerConnection({ iceServers: [] });
      // Tracks arrive while the answer is being set, before this peer replaces the old one.
      state.pending = pc;
      if (mic) pc.addTransceiver(mic.getAudioTracks()[0], { direction: "sendrecv", streams: [mic] });
      else pc.addTransceiver("audio", { direction: "recvonly" });
      pc.addEventListener("track", (event) => {
        if (state.pending !== pc && state.pc !== pc) return;
        ui.audio.srcObject = event.streams && event.streams[0] ? event.streams[0] : new MediaStream([event.track]);
        const playing = ui.audio.play();
        if (playing && playing.catch) playing.catch(() => say("Tap Join again to hear the Space.", true));
      });
      pc.addEventListener("connectionstatechange", () => {
        if (state.pc === pc && pc.connectionState === "failed") say("The audio connection failed. Leave and join again.", true);
      });
      try {
        await pc.setLocalDescription(await pc.createOffer());
        await gathered(pc);
        const reply = await realtime.request({ type: "spaces.join", space_id: state.id, sdp: pc.localDescription.sdp });
        await pc.setRemoteDescription({ type: "answer", sdp: reply.sdp });
      } catch (error) {
        pc.close();
        throw error;
      } finally {
        if (state.pending === pc) state.pending = null;
      }
      const old = state.pc;
      state.pc = pc;
      if (old && old !== pc) old.close();
      return pc;
    }

    function stopMic() {
      if (state.mic) state.mic.getTracks().forEach((track) => track.stop());
      state.mic = null;
    }

    function hangUp() {
      if (state.pc) state.pc.close();
      state.pc = null;
      stopMic();
      ui.audio.srcObject = null;
      state.joined = false;
      state.speaking.clear();
    }

    const hasLiveMic = () => Boolean(state.mic && state.mic.getAudioTracks().some((track) => track.readyState === "live"));

    // The microphone follows the server's mute: a muted speaker sends nothing.
    function applyMute() {
      const entry = mine();
      const open = Boolean(entry && ON_STAGE.has(entry.role) && !entry.muted);
      if (state.mic) state.mic.getAudioTracks().forEach((track) => { track.enabled = open; });
    }

    async function join() {
      if (state.joining || state.joined) return;
      state.joining = true;
      ui.join.disabled = true;
      if (ui.startForm) ui.startForm.querySelectorAll("button").forEach((button) => { button.disabled = true; });
      say("Joining…");
      try {
        // The host speaks from the start; everyone else listens until invited.
        let mic = null;
        if (isHost()) {
          try { mic = await microphone(); } catch (error) { say(error.message, true); }
        }
        try {
          await connect(mic);
        } catch (error) {
          if (mic) mic.getTracks().forEach((track) => track.stop());
          throw error;
        }
        state.mic = mic;
        state.joined = true;
        if (!mic || ui.line.textContent === "Joining…") say("");
        applyMute();
        // A speaker coming back keeps their seat: their microphone comes in as on an invitation.
        if (!isHost() && ON_STAGE.has(myRole())) setTimeout(upgrade, 0);
      } catch (error) {
        refused(error);
      } finally {
        state.joining = false;
        ui.join.disabled = false;
        if (ui.startForm) ui.startForm.querySelectorAll("button").forEach((button) => { button.disabled = false; });
        render();
      }
    }

    // On stage with a peer that only receives: a new peer with the microphone, joined again on this socket.
    async function upgrade() {
      if (state.upgrading || !state.joined || hasLiveMic()) return false;
      state.upgrading = true;
      try {
        say("You're on stage. Turning your microphone on…");
        const mic = await microphone();
        try {
          await connect(mic);
        } catch (error) {
          mic.getTracks().forEach((track) => track.stop());
          throw error;
        }
        stopMic();
        state.mic = mic;
        applyMute();
        say("You're a speaker. Unmute to talk.");
        return true;
      } catch (error) {
        refused(error);
        return false;
      } finally {
        state.upgrading = false;
        render();
      }
    }

    async function leave() {
      if (!state.joined) return;
      await act(ui.leave, { type: "spaces.leave" });
      hangUp();
      say(LEFT.left);
      render();
    }

    // Drawing -----------------------------------------------------------------------------------

    function person(entry, controls) {
      const who = entry.user;
      const name = nameOf(who);
      const item = element("li", { class: "spaces-person", "data-user": who.username, "data-role": entry.role });
      const avatar = element("span", { class: "avatar spaces-avatar", "aria-hidden": "true" });
      if (who.avatar_url || who.picture) avatar.appendChild(element("img", { src: who.avatar_url || who.picture, alt: "" }));
      else avatar.textContent = name.slice(0, 1).toUpperCase();
      item.appendChild(avatar);
      const label = element("span", { class: "spaces-person-name", text: name });
      if (who.verified) label.appendChild(element("span", { class: "verified", title: "Verified", "aria-label": "Verified", text: "✓" }));
      item.appendChild(label);
      const meta = element("span", { class: "spaces-person-meta" });
      if (entry.role !== "listener") meta.appendChild(element("span", { class: "spaces-role", text: roles[entry.role] || entry.role }));
      if (entry.role !== "listener" && entry.muted) meta.appendChild(element("span", { class: "spaces-mic", role: "img", "aria-label": "Microphone off", title: "Microphone off", text: "🔇" }));
      if (entry.hand_raised) meta.appendChild(element("span", { class: "spaces-hand", role: "img", "aria-label": "Hand raised", title: "Hand raised", text: "✋" }));
      if (state.speaking.has(who.username.toLowerCase())) {
        item.classList.add("speaking");
        meta.appendChild(element("span", { class: "spaces-speaking-label", text: "Speaking" }));
      }
      item.appendChild(meta);
      if (controls) item.appendChild(controls);
      return item;
    }

    function button(text, label, message, extraClass) {
      const node = element("button", { type: "button", "aria-label": label, class: extraClass || null, text });
      node.addEventListener("click", () => act(node, message));
      return node;
    }

    // What the viewer (host or co-host) may ask about one person; the server decides.
    function moderation(entry) {
      const role = myRole();
      if (!MODERATORS.has(role) || same(entry.user.username, me) || entry.role === "host") return null;
      const user = entry.user.username;
      const name = nameOf(entry.user);
      const hostOnly = role === "host";
      const items = [];
      if (entry.role === "listener") {
        items.push(button("Invite to speak", `Invite to speak: ${name}`, { type: "spaces.invite", user }, "primary"));
        if (entry.hand_raised) items.push(button("Lower hand", `Lower hand: ${name}`, { type: "spaces.lower_hand", user }));
      } else {
        if (!entry.muted) items.push(button("Mute", `Mute: ${name}`, { type: "spaces.mute", user, muted: true }));
        if (entry.role === "speaker" && hostOnly) items.push(button("Make co-host", `Make co-host: ${name}`, { type: "spaces.set_role", user, role: "cohost" }));
        if (entry.role === "cohost" && hostOnly) items.push(button("Make speaker", `Make speaker (not co-host): ${name}`, { type: "spaces.set_role", user, role: "speaker" }));
        if (entry.role === "speaker" || hostOnly) items.push(button("Back to listener", `Back to listener: ${name}`, { type: "spaces.set_role", user, role: "listener" }));
      }
      if (entry.role !== "cohost" || hostOnly) items.push(button("Remove", `Remove from the Space: ${name}`, { type: "spaces.remove", user }, "danger"));
      const menu = element("details", { class: "spaces-manage" },
        element("summary", { "aria-label": `Manage ${name}`, title: `Manage ${name}`, text: "Manage" }),
        element("div", { class: "spaces-manage-buttons" }, ...items));
      if (same(state.openMenu, user)) menu.open = true;
      menu.addEventListener("toggle", () => {
        if (menu.open) state.openMenu = user;
        else if (same(state.openMenu, user)) state.openMenu = null;
      });
      return menu;
    }

    function handControls(entry) {
      if (!MODERATORS.has(myRole())) return null;
      const name = nameOf(entry.user);
      const user = entry.user.username;
      return element("div", { class: "spaces-manage-buttons" },
        button("Invite to speak", `Invite to speak: ${name}`, { type: "spaces.invite", user }, "primary"),
        button("Lower hand", `Lower hand: ${name}`, { type: "spaces.lower_hand", user }));
    }

    function recordings() {
      const list = state.space.recordings || [];
      ui.recordings.replaceChildren(...list.map((recording, index) => {
        const seconds = Math.round(recording.duration_seconds || 0);
        const length = seconds ? ` · ${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}` : "";
        return element("figure", { class: "spaces-recording" },
          element("figcaption", { text: `Recording ${index + 1}${length}` }),
          element("audio", { controls: true, preload: "none", src: recording.url, "aria-label": `Recording ${index + 1} of ${state.space.title}` }));
      }));
    }

    function show(node, visible) { if (node) node.hidden = !visible; }

    function render() {
      const space = state.space;
      const ended = space.status === "ended";
      root.dataset.status = space.status;
      ui.status.textContent = { scheduled: "Scheduled", live: "Live", ended: "Ended" }[space.status] || space.status;
      show(ui.rec, Boolean(space.recording) && !ended);
      show(ui.ended, ended);
      if (ended) recordings();
      for (const selector of ["[data-spaces-stage-section]", "[data-spaces-listeners-section]"]) show(q(selector), !ended);
      if (ui.when) show(ui.when, space.status === "scheduled");
      if (ui.notStarted) show(ui.notStarted, space.status === "scheduled");
      if (ui.startForm) show(ui.startForm, space.status === "scheduled" && !state.joined);

      const stage = space.stage || [];
      ui.stage.replaceChildren(...stage.map((entry) => person(entry, moderation(entry))));
      const empty = q("[data-spaces-stage-empty]");
      if (empty) show(empty, stage.length === 0);
      const listeners = space.listeners || [];
      const hands = listeners.filter((entry) => entry.hand_raised);
      ui.hands.replaceChildren(...hands.map((entry) => person(entry, handControls(entry))));
      show(ui.handsSection, hands.length > 0 && !ended);
      ui.listeners.replaceChildren(...listeners.map((entry) => person(entry, moderation(entry))));
      ui.count.textContent = String(space.listener_count != null ? space.listener_count : listeners.length);

      // The viewer's own buttons.
      if (!ui.controls) return;
      const role = myRole();
      const entry = mine();
      const joined = state.joined;
      show(ui.controls, !ended);
      show(ui.join, !joined && space.status === "live");
      ui.join.textContent = state.joining ? "Joining…" : "Join this Space";
      show(ui.leave, joined);
      show(ui.react, joined);
      show(ui.hand, joined && role === "listener");
      ui.hand.textContent = myHandUp() ? "Lower hand" : "Raise hand";
      show(ui.mute, joined && ON_STAGE.has(role));
      const muted = !entry || entry.muted || !hasLiveMic();
      ui.mute.textContent = muted ? "Unmute" : "Mute";
      ui.mute.setAttribute("aria-label", muted ? "Unmute your microphone" : "Mute your microphone");
      ui.mute.classList.toggle("primary", muted);
      show(ui.stepdown, joined && (role === "speaker" || role === "cohost"));
      if (ui.record) {
        show(ui.record, joined && role === "host" && space.status === "live");
        const locked = ui.record.title ? "🔒 " : "";
        ui.record.textContent = space.recording ? "Stop recording" : locked + "Record";
        ui.record.setAttribute("aria-pressed", space.recording ? "true" : "false");
      }
      if (ui.endForm) show(ui.endForm, space.status !== "ended");
    }

    // Messages ----------------------------------------------------------------------------------

    function take(space) {
      const before = myRole();
      state.space = space;
      const after = myRole();
      applyMute();
      render();
      // Invited on stage (or made co-host) with a peer that only receives: bring the microphone in.
      // Only on the change itself: someone who refused the microphone is not asked again at every message.
      if (state.joined && ON_STAGE.has(after) && !ON_STAGE.has(before) && !hasLiveMic()) upgrade();
      // Back to listening: the microphone stops (the server no longer mixes it anyway), and the browser's mic light goes out.
      if (state.joined && after === "listener" && ON_STAGE.has(before)) stopMic();
    }

    const ours = (message) => Number(message.space_id || (message.space && message.space.id)) === Number(state.id);

    realtime.on("spaces.state", (message) => { if (ours(message)) take(message.space); });
    realtime.on("spaces.speaking", (message) => {
      if (!ours(message)) return;
      state.speaking = new Set((message.users || []).map((name) => String(name).toLowerCase()));
      render();
    });
    realtime.on("spaces.reaction", (message) => {
      if (!ours(message)) return;
      const float = element("p", { class: "spaces-floating", "data-reaction": message.emoji },
        element("span", { class: "spaces-floating-emoji", text: message.emoji }),
        element("span", { class: "spaces-floating-who", text: same(message.user, me) ? "You" : "@" + message.user }));
      ui.float.appendChild(float);
      setTimeout(() => float.remove(), 4000);
    });
    realtime.on("spaces.left", (message) => {
      if (!ours(message) || !state.joined) return;
      hangUp();
      say(LEFT[message.reason] || "You are no longer in this Space.", message.reason !== "left");
      if (message.reason === "removed") ui.join.dataset.removed = "1";
      render();
    });
    realtime.on("spaces.ended", (message) => {
      if (!ours(message)) return;
      hangUp();
      state.space = Object.assign({}, state.space, { status: "ended", recording: false, stage: [], listeners: [], hands: [], listener_count: 0 });
      say("The host ended this Space.");
      render();
      refresh();  // the recordings, when there are any
    });
    realtime.on("close", () => {
      if (!state.joined) return;
      // The server takes a closed socket as leaving: join again once the connection is back.
      hangUp();
      say("The connection dropped. Join again when it's back.", true);
      render();
    });

    // The Space as the API has it now (a page that has not joined gets no spaces.state).
    async function refresh() {
      try {
        const response = await fetch(`/api/spaces/${state.id}`, { credentials: "same-origin", headers: { accept: "application/json" } });
        if (!response.ok) return;
        const space = await response.json();
        if (state.joined && space.status !== "ended") return;  // spaces.state keeps a joined page up to date
        state.space = space;
        render();
      } catch (error) { /* offline for a moment: the next poll tries again */ }
    }
    setInterval(() => { if (!state.joined && state.space.status !== "ended" && !document.hidden) refresh(); }, POLL_MS);

    // Buttons -----------------------------------------------------------------------------------

    ui.join && ui.join.addEventListener("click", join);
    ui.leave && ui.leave.addEventListener("click", leave);
    if (ui.startForm) {
      // The host starts the Space by joining it (the form starts it without joining when there is no script).
      ui.startForm.addEventListener("submit", (event) => { event.preventDefault(); join(); });
    }
    if (ui.endForm) {
      ui.endForm.addEventListener("submit", (event) => {
        if (ui.endForm.dataset.sending) { event.preventDefault(); return; }
        ui.endForm.dataset.sending = "1";
        setTimeout(() => ui.endForm.querySelectorAll("button").forEach((node) => { node.disabled = true; }), 0);
      });
    }
    ui.hand && ui.hand.addEventListener("click", () => act(ui.hand, { type: myHandUp() ? "spaces.lower_hand" : "spaces.raise_hand" }));
    ui.mute && ui.mute.addEventListener("click", async () => {
      const entry = mine();
      if (!entry) return;
      const unmuting = entry.muted || !hasLiveMic();
      if (unmuting && !hasLiveMic() && !(await upgrade())) return;
      if (await act(ui.mute, { type: "spaces.mute", muted: !unmuting })) say("");
    });
    ui.stepdown && ui.stepdown.addEventListener("click", () => act(ui.stepdown, { type: "spaces.set_role", user: me, role: "listener" }));
    ui.record && ui.record.addEventListener("click", () => act(ui.record, { type: "spaces.record", on: !state.space.recording }));
    ui.react && ui.react.querySelectorAll("[data-emoji]").forEach((node) => {
      node.addEventListener("click", () => act(node, { type: "spaces.react", emoji: node.dataset.emoji }));
    });
    addEventListener("pagehide", () => { if (state.joined) realtime.send({ type: "spaces.leave", space_id: state.id }); });

    root.querySelectorAll("time[datetime]").forEach(localTime);
    render();

    window.everythingSpaces = {
      get peer() { return state.pc; },
      get space() { return state.space; },
      get joined() { return state.joined; },
      join,
      leave,
    };
    Object.defineProperty(window, "spacesPeer", { configurable: true, get: () => state.pc });
  }

  function init() {
    document.querySelectorAll("[data-spaces-form]").forEach(startForm);
    document.querySelectorAll("time[data-spaces-local-time]").forEach(localTime);
    const root = document.querySelector("[data-space-page]");
    const realtime = window.everything && window.everything.realtime;
    if (root && realtime) spacePage(root, realtime);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init, { once: true });
  else init();
})();
