// Calls in the browser: the incoming-call overlay and the in-call view, on every page of a signed-in user.
//
// The signaling is docs/calls-protocol.md over the page's shared socket (everything.realtime):
//
//   caller: getUserMedia → offer → calls.invite … calls.ringing … calls.answered → connected
//   callee: calls.incoming → (calls.ringing) → Accept → answer → calls.answer → connected
//   both:   calls.candidate both ways (trickled), calls.renegotiate for the camera and ICE restarts,
//           calls.hangup / calls.ended, calls.resume after the socket comes back.
//
// Links to /calls/call?to=…&media=… are taken over in the page (no navigation); the call page
// itself ([data-call-page]) places its call on opening. Tests reach the live peer connection as
// window.everythingCalls.peer.
(function () {
  "use strict";
  if (window.everythingCalls) return;  // included twice: one is enough

  // What ended or refused a call, in words. "{name}" is the other person. pages.py has the refusals too.
  const REASONS = {
    hangup: "The call ended.",
    you_hung_up: "You hung up.",
    cancelled: "The call was cancelled.",
    you_cancelled: "You cancelled the call.",
    you_declined: "You declined the call.",
    rejected: "{name} declined the call.",
    timeout: "No answer.",
    busy: "{name} is on another call.",
    unavailable: "{name} isn't online right now. They'll see that you called.",
    answered_elsewhere: "Answered on another device.",
    glare: "You called each other at the same moment. Joining their call…",
    disconnected: "The connection was lost.",
    ice_failed: "The call couldn't connect: the network between you is blocked.",
    media_failed: "The call's sound or picture failed.",
    plugin_disabled: "Calls have been switched off on this site.",
    premium_required: "Audio and video calls are a premium feature. Subscribe to gain access.",
    not_allowed: "{name} only takes calls from certain people.",
    calls_off: "{name} has turned calls off.",
    blocked: "You can't call {name}.",
    unknown_user: "There is no such user.",
    self: "You can't call yourself.",
    in_call: "You're already in a call.",
    already_answered: "Answered on another device.",
    not_ringing: "The call is no longer ringing.",
    call_ended: "The call is over.",
    unknown_call: "The call is over.",
    rate_limited: "Too many messages at once. Try again in a moment.",
    media_denied: "Allow this site to use your microphone and camera to make calls.",
    no_devices: "No microphone was found.",
    insecure: "Calls need a secure (https) connection.",
    unsupported: "This browser can't make calls.",
  };
  const STATES = {
    starting: "Starting…",
    calling: "Calling…",
    ringing: "Ringing…",
    connecting: "Connecting…",
    connected: "Connected",
    reconnecting: "Reconnecting…",
    ended: "Call ended",
  };
  const ICE_GIVE_UP_MS = 20000;

  let realtime = null;
  let call = null;                // the one call this tab is placing or in
  const incoming = new Map();     // call_id → {message, candidates, timer}: ringing here, not accepted
  const finished = new Set();     // call ids that ended here, so that late messages about them are ignored
  let glare = null;               // {username, media, until}: we lost glare to this person, take their call
  let socketDown = false;
  const goodbyes = [];            // hang-ups made while the socket was down
  let iceCache = null;
  let layer = null;               // the overlay's root element
  let savedTitle = null;

  // Small helpers ------------------------------------------------------------------------

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

  function nameOf(person) {
    if (!person) return "They";
    return person.display_name || "@" + person.username;
  }

  function words(reason, person, fallback) {
    const text = REASONS[reason] || fallback || "The call ended.";
    return text.replace("{name}", nameOf(person));
  }

  function sameUser(a, b) {
    return String(a || "").toLowerCase() === String(b || "").toLowerCase();
  }

  function newCallId() {
    if (window.crypto && crypto.randomUUID) return "c-" + crypto.randomUUID();
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return "c-" + Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  }

  function clock(seconds) {
    const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = Math.floor(seconds % 60);
    const mm = String(m).padStart(h ? 2 : 1, "0"), ss = String(s).padStart(2, "0");
    return h ? h + ":" + mm + ":" + ss : mm + ":" + ss;
  }

  function warnOnLeave(event) {
    event.preventDefault();
    event.returnValue = "";  // the browser shows its own "Leave site?" question
    return "";
  }

  // Signaling ----------------------------------------------------------------------------

  // Send a message about the current call; while the socket is down, keep it for after calls.resume
  // (a new connection must bind itself to the call first).
  function signal(current, message) {
    if (socketDown) {
      current.outbox.push(message);
      return;
    }
    realtime.request(message).catch((error) => {
      // A call that is over says so with calls.ended, which carries the reason.
      if (error.code === "disconnected") current.outbox.push(message);
      else console.warn("calls:", message.type, "refused:", error.code, error.message);
    });
  }

  async function iceServers() {
    if (iceCache && iceCache.expires > Date.now()) return iceCache.servers;
    try {
      const response = await fetch("/api/calls/ice-servers", { credentials: "same-origin", headers: { accept: "application/json" } });
      if (!response.ok) throw new Error("HTTP " + response.status);
      const body = await response.json();
      // Refresh well before TURN credentials expire.
      iceCache = { servers: body.iceServers || [], expires: Date.now() + (body.ttl || 600) * 500 };
      return iceCache.servers;
    } catch (error) {
      console.warn("calls: no ICE servers, trying direct connections only:", error);
      return [];
    }
  }

  async function getMedia(video, devices) {
    if (!window.RTCPeerConnection) throw { code: "unsupported" };
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) throw { code: window.isSecureContext ? "unsupported" : "insecure" };
    const audio = devices && devices.microphone ? { deviceId: { exact: devices.microphone } } : true;
    const camera = devices && devices.camera ? { deviceId: { exact: devices.camera } } : { width: { ideal: 1280 }, height: { ideal: 720 } };
    try {
      return await navigator.mediaDevices.getUserMedia({ audio, video: video ? camera : false });
    } catch (error) {
      if (error && error.name === "NotAllowedError") throw { code: "media_denied" };
      if (video) {
        // No usable camera: the call goes on with sound alone.
        try { return await navigator.mediaDevices.getUserMedia({ audio }); } catch (ignored) { /* fall through */ }
      }
      throw { code: "no_devices" };
    }
  }

  // True when the call ended while we were waiting for the browser: release what arrived too late.
  function abandoned(current) {
    if (!current.ended) return false;
    if (current.local) current.local.getTracks().forEach((track) => track.stop());
    if (current.pc) { try { current.pc.close(); } catch (ignored) { /* already closed */ } }
    return true;
  }

  function newCall(fields) {
    return Object.assign({
      id: null, role: "caller", media: "audio", peerUser: null, pc: null, local: null, remote: new MediaStream(),
      state: "starting", invited: false, answered: false, negotiable: false, negotiationPending: false,
      makingOffer: false, polite: false, canTrickle: false, localCandidates: [], remoteCandidates: [], outbox: [],
      muted: false, cameraOn: false, videoSender: null, devices: {}, startedAt: null, ended: false,
      reason: null, detail: null, failedSince: null, timers: [],
    }, fields);
  }

  function makePeer(current, servers) {
    const pc = new RTCPeerConnection({ iceServers: servers });
    pc.addEventListener("icecandidate", (event) => {
      const message = { type: "calls.candidate", call_id: current.id, candidate: event.candidate ? event.candidate.toJSON() : null };
      // The server takes candidates only once it knows the call (the caller's invite was accepted,
      // the callee's answer was taken).
      if (current.canTrickle) signal(current, message);
      else current.localCandidates.push(message);
    });
    pc.addEventListener("track", (event) => {
      current.remote.addTrack(event.track);
      event.track.addEventListener("mute", () => showRemote(current));
      event.track.addEventListener("unmute", () => showRemote(current));
      event.track.addEventListener("ended", () => showRemote(current));
      showRemote(current, true);
    });
    pc.addEventListener("connectionstatechange", () => connectionChanged(current));
    pc.addEventListener("negotiationneeded", () => renegotiate(current));
    return pc;
  }

  function startTrickling(current) {
    current.canTrickle = true;
    const waiting = current.localCandidates;
    current.localCandidates = [];
    waiting.forEach((message) => signal(current, message));
  }

  function addRemoteCandidate(current, candidate) {
    const pc = current.pc;
    // Candidates can only be added once the remote description is set.
    if (!pc || !pc.remoteDescription) {
      current.remoteCandidates.push(candidate);
      return;
    }
    const adding = candidate ? pc.addIceCandidate(candidate) : pc.addIceCandidate();
    adding.catch((error) => console.warn("calls: a remote candidate was refused:", error));
  }

  function flushRemoteCandidates(current) {
    const waiting = current.remoteCandidates;
    current.remoteCandidates = [];
    waiting.forEach((candidate) => addRemoteCandidate(current, candidate));
  }

  // "Perfect negotiation" (the callee is the polite side): a new offer for the camera or an ICE restart.
  async function renegotiate(current) {
    if (current.ended || !current.pc || current.fixedMedia) return;
    if (!current.negotiable) {
      current.negotiationPending = true;
      return;
    }
    const pc = current.pc;
    try {
      current.makingOffer = true;
      await pc.setLocalDescription();
      if (current.ended || pc.signalingState !== "have-local-offer") return;
      const message = { type: "calls.renegotiate", call_id: current.id, sdp: pc.localDescription.sdp, sdp_type: "offer" };
      if (socketDown) {
        current.outbox.push(message);
        return;
      }
      realtime.request(message).catch((error) => {
        if (error.code === "disconnected") { current.outbox.push(message); return; }
        // Refused (the echo test cannot renegotiate): keep the media as it is, and stop asking.
        current.fixedMedia = true;
        if (!current.ended && pc.signalingState === "have-local-offer") pc.setLocalDescription({ type: "rollback" }).catch(() => {});
        flash(current, error.message || "The call's media can't be changed.");
      });
    } catch (error) {
      console.warn("calls: renegotiation failed:", error);
    } finally {
      current.makingOffer = false;
    }
  }

  // One call's descriptions are applied one after another: an offer for the camera that arrives
  // while the answer is still being applied must wait for it, not be taken for glare and dropped.
  function inOrder(current, work) {
    current.applying = (current.applying || Promise.resolve()).then(work).catch((error) => console.warn("calls:", error));
    return current.applying;
  }

  async function takeRenegotiation(current, message) {
    const pc = current.pc;
    if (!pc || current.ended) return;
    const collision = message.sdp_type === "offer" && (current.makingOffer || pc.signalingState !== "stable");
    if (collision && !current.polite) return;  // ours wins; theirs is rolled back on their side
    try {
      await pc.setRemoteDescription({ type: message.sdp_type, sdp: message.sdp });
      flushRemoteCandidates(current);
      if (message.sdp_type === "offer") {
        await pc.setLocalDescription();
        signal(current, { type: "calls.renegotiate", call_id: current.id, sdp: pc.localDescription.sdp, sdp_type: "answer" });
      }
    } catch (error) {
      console.warn("calls: could not take the renegotiation:", error);
    }
    showRemote(current);
  }

  function connectionChanged(current) {
    if (current !== call || current.ended) return;
    const state = current.pc.connectionState;
    if (state === "connected") {
      current.failedSince = null;
      if (!current.startedAt) current.startedAt = Date.now();
      setState(current, "connected");
    } else if (state === "disconnected" || state === "failed") {
      setState(current, "reconnecting");
      if (!current.failedSince) current.failedSince = Date.now();
      // The caller restarts ICE (one side is enough); the offer goes out through negotiationneeded.
      if (state === "failed" && current.role === "caller" && current.negotiable && current.pc.restartIce) current.pc.restartIce();
      const since = current.failedSince;
      current.timers.push(setTimeout(() => {
        if (current.failedSince === since && !current.ended) hangup(current, "ice_failed");
      }, ICE_GIVE_UP_MS));
    } else if (state === "connecting" && current.answered) {
      setState(current, current.startedAt ? "reconnecting" : "connecting");
    }
  }

  // Placing a call -----------------------------------------------------------------------

  async function place(to, media, options) {
    to = String(to || "").replace(/^@/, "").trim();
    media = media === "video" ? "video" : "audio";
    if (!to) return null;
    if (call && !call.ended) {
      renderCall(call);
      flash(call, REASONS.in_call);
      return call;
    }
    const current = call = newCall({
      id: newCallId(), role: "caller", media, fixedMedia: sameUser(to, "echo"),
      peerUser: { username: to, display_name: (options && options.displayName) || "@" + to },
    });
    addEventListener("beforeunload", warnOnLeave);
    renderCall(current);
    try {
      current.local = await getMedia(media === "video");
      const servers = await iceServers();
      if (abandoned(current)) return current;
      current.cameraOn = current.local.getVideoTracks().length > 0;
      const pc = current.pc = makePeer(current, servers);
      current.local.getTracks().forEach((track) => {
        const sender = pc.addTrack(track, current.local);
        if (track.kind === "video") current.videoSender = sender;
      });
      showLocal(current);
      await pc.setLocalDescription(await pc.createOffer());
      if (abandoned(current)) return current;
      setState(current, "calling");
      current.invited = true;
      const reply = await realtime.request({ type: "calls.invite", call_id: current.id, to, media, sdp: pc.localDescription.sdp });
      if (reply.call) {
        current.peerUser = reply.call.callee || current.peerUser;
        renderNames(current);
        if (reply.call.state === "ended") {
          end(current, reply.call.end_reason);
          return current;
        }
      }
      startTrickling(current);
    } catch (error) {
      if (error && error.code === "disconnected" && current.invited) {
        socketDown = true;  // the invite may have gone through: calls.resume will tell
      } else {
        end(current, (error && error.code) || "media_failed", error);
      }
    }
    return current;
  }

  // Answering a call ---------------------------------------------------------------------

  function ringIn(message) {
    const known = incoming.get(message.call_id);
    if (known) {
      // The same call again, on a connection opened while it rings: it rings here too.
      known.message = message;
      realtime.request({ type: "calls.ringing", call_id: message.call_id }).catch(() => {});
      return;
    }
    if (finished.has(message.call_id) || (call && call.id === message.call_id)) return;
    // The server ends a call that rings too long; this only clears an overlay whose calls.ended was lost.
    const ring = { message, candidates: [], timer: setTimeout(() => dismiss(message.call_id), (message.lifetime_ms || 60000) + 5000) };
    incoming.set(message.call_id, ring);
    realtime.request({ type: "calls.ringing", call_id: message.call_id }).catch(() => {});
    // We lost glare against this very person: their call is the one that survives, so take it.
    if (glare && glare.until > Date.now() && sameUser(glare.username, message.caller && message.caller.username)) {
      const media = glare.media;
      glare = null;
      accept(message.call_id, media === "video");
      return;
    }
    if (call && !call.ended) {
      if (call.role === "caller" && !call.answered && sameUser(call.peerUser.username, message.caller && message.caller.username)) {
        return;  // glare: one of the two calls is about to end; the survivor decides
      }
      return;  // in another call: the server says "busy" to the caller
    }
    renderIncoming();
    if (navigator.vibrate) { try { navigator.vibrate([300, 150, 300]); } catch (ignored) { /* not allowed before a tap */ } }
  }

  function dismiss(callId) {
    const ring = incoming.get(callId);
    if (!ring) return;
    clearTimeout(ring.timer);
    incoming.delete(callId);
    finished.add(callId);
    if (!call || call.ended) renderIncoming();
  }

  function decline(callId) {
    if (!incoming.has(callId)) return;
    realtime.request({ type: "calls.reject", call_id: callId }).catch(() => {});
    dismiss(callId);
  }

  async function accept(callId, withVideo) {
    const ring = incoming.get(callId);
    if (!ring || (call && !call.ended)) return null;
    clearTimeout(ring.timer);
    incoming.delete(callId);
    const message = ring.message;
    const current = call = newCall({
      id: callId, role: "callee", media: message.media, peerUser: message.caller, polite: true,
      remoteCandidates: ring.candidates, state: "connecting",
    });
    addEventListener("beforeunload", warnOnLeave);
    renderCall(current);
    try {
      current.local = await getMedia(withVideo);
      const servers = await iceServers();
      if (abandoned(current)) return current;
      current.cameraOn = current.local.getVideoTracks().length > 0;
      const pc = current.pc = makePeer(current, servers);
      await pc.setRemoteDescription({ type: "offer", sdp: message.sdp });
      flushRemoteCandidates(current);
      current.local.getTracks().forEach((track) => {
        // Reuses the offer's transceiver of that kind; video on an audio call gets a new one, sent by renegotiation.
        const sender = pc.addTrack(track, current.local);
        if (track.kind === "video") current.videoSender = sender;
      });
      showLocal(current);
      await pc.setLocalDescription(await pc.createAnswer());
      if (abandoned(current)) return current;
      const answering = realtime.request({ type: "calls.answer", call_id: callId, sdp: pc.localDescription.sdp });
      current.answered = true;
      current.negotiable = true;
      await answering;
      startTrickling(current);
      if (current.negotiationPending) {
        current.negotiationPending = false;
        renegotiate(current);
      }
    } catch (error) {
      const code = (error && error.code) || "media_failed";
      if (code === "media_denied" || code === "no_devices" || code === "insecure" || code === "unsupported") {
        realtime.request({ type: "calls.reject", call_id: callId }).catch(() => {});
      }
      if (code === "disconnected") socketDown = true;
      else end(current, code, error);
    }
    return current;
  }

  // Ending -------------------------------------------------------------------------------

  function end(current, reason, detail) {
    if (!current || current.ended) return;
    current.ended = true;
    current.reason = reason;
    current.detail = detail || null;
    current.state = "ended";
    finished.add(current.id);
    current.timers.forEach(clearTimeout);
    if (current.clock) clearInterval(current.clock);
    if (current.local) current.local.getTracks().forEach((track) => track.stop());
    if (current.pc) { try { current.pc.close(); } catch (ignored) { /* already closed */ } }
    removeEventListener("beforeunload", warnOnLeave);
    if (reason === "glare") {
      glare = { username: current.peerUser.username, media: current.media, until: Date.now() + 10000 };
      // Their invite may already be here.
      for (const [id, ring] of incoming) {
        if (sameUser(ring.message.caller && ring.message.caller.username, current.peerUser.username)) {
          glare = null;
          if (call === current) call = null;
          accept(id, current.media === "video");
          return;
        }
      }
    }
    if (call !== current) return;
    if (reason === "answered_elsewhere" || reason === "already_answered") {
      call = null;
      renderIncoming();
      return;
    }
    renderEnded(current);
  }

  function hangup(current, reason) {
    current = current || call;
    if (!current || current.ended) return;
    let message = null;
    if (current.role === "callee" && !current.answered) {
      message = { type: "calls.reject", call_id: current.id };  // still ringing at the server
    } else if (current.invited || current.answered) {
      message = { type: "calls.hangup", call_id: current.id, reason: reason || "hangup" };
    }
    if (message && socketDown) goodbyes.push(message);  // sent after calls.resume binds the new connection
    else if (message) realtime.request(message).catch(() => {});
    const own = current.role === "callee" && !current.answered ? "you_declined" : current.answered ? "you_hung_up" : "you_cancelled";
    end(current, reason && reason !== "hangup" ? reason : own);
  }

  // After the socket comes back: tell the server this connection carries the call now.
  async function resume(current) {
    try {
      const reply = await realtime.request({ type: "calls.resume", call_id: current.id });
      if (current.ended) return;
      const state = reply.call && reply.call.state;
      if (state === "ended") {
        end(current, reply.call.end_reason || "disconnected");
        return;
      }
      if (current.role === "callee" && state === "ringing" && current.pc && current.pc.localDescription) {
        // Our answer was lost with the old connection: give it again.
        await realtime.request({ type: "calls.answer", call_id: current.id, sdp: current.pc.localDescription.sdp });
      }
      if (!current.canTrickle) startTrickling(current);
      const waiting = current.outbox;
      current.outbox = [];
      waiting.forEach((message) => signal(current, message));
      if (current.pc && current.pc.connectionState !== "connected" && current.answered) setState(current, "connecting");
    } catch (error) {
      if (error.code === "disconnected") return;  // dropped again: the next "open" tries again
      end(current, error.code === "unknown_call" || error.code === "call_ended" ? "disconnected" : error.code, error);
    }
  }

  // The view -----------------------------------------------------------------------------

  function root() {
    if (!layer) {
      layer = element("div", { class: "calls-layer", "data-calls-layer": true });
      document.body.appendChild(layer);
    }
    return layer;
  }

  function closeView() {
    if (layer) { layer.replaceChildren(); layer.hidden = true; }
    document.documentElement.classList.remove("calls-open");
    if (savedTitle !== null) { document.title = savedTitle; savedTitle = null; }
    const next = incoming.size ? [...incoming.values()].pop() : null;
    if (next) renderIncoming();
  }

  function show(view) {
    const host = root();
    host.replaceChildren(view);
    host.hidden = false;
    document.documentElement.classList.add("calls-open");
    // Focus the dialog itself, not a button: a key pressed while typing must not accept or end a call.
    view.tabIndex = -1;
    view.focus({ preventScroll: true });
  }

  function avatar(person, large) {
    const initial = (nameOf(person).replace(/^@/, "")[0] || "?").toUpperCase();
    return element("span", { class: "avatar calls-avatar" + (large ? " large" : ""), "aria-hidden": "true", text: initial });
  }

  function renderIncoming() {
    const rings = [...incoming.values()];
    if (!rings.length) {
      if (!call) closeView();
      return;
    }
    const ring = rings[rings.length - 1];
    const message = ring.message;
    const video = message.media === "video";
    const kind = video ? "video call" : "audio call";
    if (savedTitle === null) savedTitle = document.title;
    document.title = "📞 " + nameOf(message.caller) + " is calling";
    show(element("section", {
      class: "calls-incoming", role: "alertdialog", "aria-modal": "true", "aria-labelledby": "calls-incoming-title",
      "data-calls-incoming": message.call_id,
    },
      avatar(message.caller, true),
      element("h2", { id: "calls-incoming-title", class: "calls-name" }, nameOf(message.caller),
        message.caller && message.caller.verified ? element("span", { class: "verified", title: "Verified", "aria-label": "Verified", text: "✓" }) : null),
      element("p", { class: "calls-handle", text: "@" + (message.caller ? message.caller.username : "") }),
      element("p", { class: "calls-kind", text: "Incoming " + kind + "…" }),
      element("div", { class: "calls-answer-buttons" },
        element("button", { type: "button", class: "calls-accept", onclick: () => accept(message.call_id, false) },
          element("span", { "aria-hidden": "true", text: "📞 " }), "Accept with audio"),
        element("button", { type: "button", class: "calls-accept", onclick: () => accept(message.call_id, true) },
          element("span", { "aria-hidden": "true", text: "🎥 " }), "Accept with video"),
        element("button", { type: "button", class: "calls-decline", onclick: () => decline(message.call_id) },
          element("span", { "aria-hidden": "true", text: "✕ " }), "Decline")),
    ));
  }

  function renderCall(current) {
    if (savedTitle !== null) { document.title = savedTitle; savedTitle = null; }
    const view = element("section", { class: "calls-view", role: "dialog", "aria-modal": "true", "aria-label": "Call with " + nameOf(current.peerUser), "data-calls-view": true, "data-call-state": current.state });
    const remoteVideo = element("video", { class: "calls-remote", autoplay: true, playsinline: true, "data-calls-remote": true });
    const localVideo = element("video", { class: "calls-local", autoplay: true, playsinline: true, muted: true, "data-calls-local": true });
    localVideo.muted = true;  // never hear oneself
    const stage = element("div", { class: "calls-stage" },
      element("div", { class: "calls-placeholder" }, avatar(current.peerUser, true)),
      remoteVideo, localVideo,
      element("button", { type: "button", class: "calls-play", hidden: true, onclick: () => playRemote(current, true) }, "Tap to hear the call"));
    const microphone = element("select", { "aria-label": "Microphone", onchange: (event) => switchDevice(current, "audio", event.target.value) });
    const camera = element("select", { "aria-label": "Camera", onchange: (event) => switchDevice(current, "video", event.target.value) });
    const devices = element("div", { class: "calls-devices", hidden: true },
      element("label", {}, "Microphone", microphone),
      element("label", {}, "Camera", camera));
    const controls = element("div", { class: "calls-controls" },
      element("button", { type: "button", class: "calls-mute", onclick: () => toggleMute(current) }, "Mute"),
      element("button", { type: "button", class: "calls-camera", onclick: () => toggleCamera(current) }, "Camera on"),
      element("button", { type: "button", class: "calls-devices-toggle", "aria-expanded": "false", onclick: (event) => {
        devices.hidden = !devices.hidden;
        event.currentTarget.setAttribute("aria-expanded", String(!devices.hidden));
        if (!devices.hidden) listDevices(current);
      } }, "Devices"),
      element("button", { type: "button", class: "calls-hangup", onclick: () => hangup(current) }, "Hang up"));
    view.append(
      element("header", { class: "calls-top" },
        element("div", { class: "calls-who" },
          element("strong", { class: "calls-name", "data-calls-name": true, text: nameOf(current.peerUser) }),
          element("span", { class: "calls-handle", "data-calls-handle": true, text: "@" + current.peerUser.username })),
        element("div", { class: "calls-status" },
          element("span", { "data-calls-state": true, role: "status", text: STATES[current.state] }),
          element("span", { class: "calls-duration", "data-calls-duration": true, text: "" }))),
      stage,
      element("p", { class: "calls-flash", "data-calls-flash": true, role: "status", hidden: true }),
      devices,
      controls);
    current.view = { root: view, remoteVideo, localVideo, microphone, camera, devices };
    show(view);
    current.clock = current.clock || setInterval(() => tick(current), 1000);
    updateButtons(current);
    setState(current, current.state);
  }

  function renderNames(current) {
    const view = current.view;
    if (!view) return;
    view.root.setAttribute("aria-label", "Call with " + nameOf(current.peerUser));
    view.root.querySelector("[data-calls-name]").textContent = nameOf(current.peerUser);
    view.root.querySelector("[data-calls-handle]").textContent = "@" + current.peerUser.username;
  }

  function renderEnded(current) {
    const view = current.view;
    const text = words(current.reason, current.peerUser, current.detail && current.detail.message);
    updatePage(current, text);
    if (!view || layer.firstChild !== view.root) return;
    view.root.dataset.callState = "ended";
    view.root.classList.add("ended");
    view.root.querySelector("[data-calls-state]").textContent = STATES.ended;
    view.remoteVideo.srcObject = null;
    view.localVideo.srcObject = null;
    const actions = element("div", { class: "calls-controls" });
    const upgrade = current.detail && current.detail.upgrade_url;
    if (current.reason === "premium_required") {
      actions.appendChild(element("a", { class: "button primary", href: upgrade || "/premium?feature=calls." + current.media, text: "See plans" }));
    }
    actions.appendChild(element("button", { type: "button", class: "calls-close", onclick: () => { if (call === current) call = null; closeView(); } }, "Close"));
    const notice = element("p", { class: "calls-ended-reason", role: "alert", "data-calls-ended": current.reason || "", text: text });
    view.root.querySelector(".calls-stage").replaceChildren(element("div", { class: "calls-placeholder" }, avatar(current.peerUser, true), notice));
    view.root.querySelector(".calls-controls").replaceWith(actions);
    view.devices.hidden = true;
    view.root.querySelector("[data-calls-flash]").hidden = true;
  }

  function setState(current, state) {
    if (current.ended) return;
    current.state = state;
    const view = current.view;
    if (view) {
      view.root.dataset.callState = state;
      view.root.querySelector("[data-calls-state]").textContent = STATES[state] || state;
    }
    updatePage(current, STATES[state]);
  }

  // The call page's own status line follows the call placed from it.
  function updatePage(current, text) {
    const page = document.querySelector("[data-call-page]");
    if (!page || !sameUser(page.dataset.to, current.peerUser.username)) return;
    const status = page.querySelector("[data-call-page-status]");
    if (status) status.textContent = text;
    const start = page.querySelector("[data-call-page-start]");
    if (start) {
      start.hidden = !current.ended;
      start.textContent = "Call again";
    }
  }

  function flash(current, text) {
    const view = current.view;
    if (!view) return;
    const note = view.root.querySelector("[data-calls-flash]");
    note.textContent = text;
    note.hidden = false;
    current.timers.push(setTimeout(() => { note.hidden = true; }, 5000));
  }

  function tick(current) {
    const view = current.view;
    if (!view || current.ended || !current.startedAt) return;
    view.root.querySelector("[data-calls-duration]").textContent = clock((Date.now() - current.startedAt) / 1000);
  }

  function showLocal(current) {
    const view = current.view;
    if (!view || current.ended) return;
    const video = current.local && current.local.getVideoTracks().find((track) => track.readyState === "live");
    view.localVideo.srcObject = video ? new MediaStream([video]) : null;
    view.localVideo.hidden = !video || !current.cameraOn;
    updateButtons(current);
  }

  function showRemote(current, newTrack) {
    const view = current.view;
    if (!view || current.ended) return;
    if (newTrack) {
      // A fresh stream object makes the element take up tracks added by renegotiation.
      view.remoteVideo.srcObject = new MediaStream(current.remote.getTracks());
      playRemote(current, false);
    }
    const seeing = current.remote.getVideoTracks().some((track) => track.readyState === "live" && !track.muted);
    view.root.classList.toggle("has-video", seeing);
  }

  function playRemote(current, tapped) {
    const view = current.view;
    if (!view) return;
    const button = view.root.querySelector(".calls-play");
    const playing = view.remoteVideo.play();
    if (playing && playing.then) {
      playing.then(() => { if (button) button.hidden = true; }, () => {
        // The browser wants a tap before it plays sound.
        if (button && !tapped) button.hidden = false;
      });
    }
  }

  function updateButtons(current) {
    const view = current.view;
    if (!view) return;
    const mute = view.root.querySelector(".calls-mute");
    const camera = view.root.querySelector(".calls-camera");
    // The label says what a tap does; the highlight shows what is off.
    if (mute) {
      mute.textContent = current.muted ? "Unmute" : "Mute";
      mute.classList.toggle("off", current.muted);
    }
    if (camera) {
      camera.textContent = current.cameraOn ? "Camera off" : "Camera on";
      camera.classList.toggle("off", !current.cameraOn);
    }
  }

  // Controls -----------------------------------------------------------------------------

  function toggleMute(current) {
    if (current.ended) return;
    current.muted = !current.muted;
    if (current.local) current.local.getAudioTracks().forEach((track) => { track.enabled = !current.muted; });
    updateButtons(current);
  }

  async function toggleCamera(current) {
    if (current.ended || !current.pc || current.cameraBusy) return;
    if (current.fixedMedia && !current.videoSender) {
      flash(current, "This call can't add video. Call again with video.");
      return;
    }
    current.cameraBusy = true;
    const pc = current.pc;
    try {
      if (current.cameraOn && current.fixedMedia) {
        // No renegotiation here (the echo test): stop the camera and send nothing in its place.
        current.local.getVideoTracks().forEach((track) => { track.stop(); current.local.removeTrack(track); });
        await current.videoSender.replaceTrack(null);
        current.cameraOn = false;
      } else if (current.cameraOn) {
        // Off means off: the camera stops, and the other side is told (by renegotiation) to stop expecting a picture.
        current.local.getVideoTracks().forEach((track) => { track.stop(); current.local.removeTrack(track); });
        if (current.videoSender) {
          await current.videoSender.replaceTrack(null);
          const transceiver = pc.getTransceivers().find((t) => t.sender === current.videoSender);
          if (transceiver && transceiver.direction === "sendrecv") transceiver.direction = "recvonly";
        }
        current.cameraOn = false;
      } else {
        const stream = await getMedia(true, { camera: current.devices.camera });
        stream.getAudioTracks().forEach((track) => track.stop());
        const track = stream.getVideoTracks()[0];
        if (!track) throw { code: "no_devices" };
        if (current.ended) { track.stop(); return; }
        current.local.addTrack(track);
        if (current.videoSender) {
          await current.videoSender.replaceTrack(track);
          const transceiver = pc.getTransceivers().find((t) => t.sender === current.videoSender);
          if (transceiver && transceiver.direction === "recvonly" && !current.fixedMedia) transceiver.direction = "sendrecv";
        } else {
          // An audio call gains a camera: a new (or the offer's idle) video transceiver, sent by renegotiation.
          current.videoSender = pc.addTrack(track, current.local);
        }
        current.cameraOn = true;
      }
    } catch (error) {
      flash(current, error && error.code === "media_denied" ? REASONS.media_denied : "The camera couldn't be turned on.");
    } finally {
      current.cameraBusy = false;
    }
    showLocal(current);
  }

  async function listDevices(current) {
    if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
    const all = await navigator.mediaDevices.enumerateDevices();
    const fill = (select, kind, track, label) => {
      const inUse = track && track.getSettings ? track.getSettings().deviceId : null;
      select.replaceChildren(...all.filter((device) => device.kind === kind).map((device, index) =>
        element("option", { value: device.deviceId, selected: device.deviceId === inUse, text: device.label || label + " " + (index + 1) })));
      select.disabled = select.options.length < 2;
    };
    const view = current.view;
    if (!view || current.ended) return;
    fill(view.microphone, "audioinput", current.local && current.local.getAudioTracks()[0], "Microphone");
    fill(view.camera, "videoinput", current.local && current.local.getVideoTracks()[0], "Camera");
  }

  async function switchDevice(current, kind, deviceId) {
    if (current.ended || !current.pc) return;
    if (kind === "video") {
      current.devices.camera = deviceId;
      if (!current.cameraOn) return;  // used the next time the camera comes on
    } else {
      current.devices.microphone = deviceId;
    }
    try {
      const constraints = kind === "audio" ? { audio: { deviceId: { exact: deviceId } } } : { video: { deviceId: { exact: deviceId } } };
      const stream = await navigator.mediaDevices.getUserMedia(constraints);
      const track = kind === "audio" ? stream.getAudioTracks()[0] : stream.getVideoTracks()[0];
      if (current.ended) { track.stop(); return; }
      if (kind === "audio") track.enabled = !current.muted;
      const sender = kind === "video" ? current.videoSender : current.pc.getSenders().find((s) => s.track && s.track.kind === "audio");
      if (sender) await sender.replaceTrack(track);  // no renegotiation: same kind, same transceiver
      const old = kind === "audio" ? current.local.getAudioTracks() : current.local.getVideoTracks();
      old.forEach((item) => { item.stop(); current.local.removeTrack(item); });
      current.local.addTrack(track);
      showLocal(current);
    } catch (error) {
      flash(current, "That device couldn't be used.");
    }
  }

  // Wiring -------------------------------------------------------------------------------

  function forCall(message) {
    return call && !call.ended && call.id === message.call_id ? call : null;
  }

  function wire() {
    realtime.on("calls.incoming", ringIn);
    realtime.on("calls.ringing", (message) => {
      const current = forCall(message);
      if (current && current.role === "caller" && !current.answered) setState(current, "ringing");
    });
    realtime.on("calls.answered", (message) => {
      const current = forCall(message);
      if (!current || current.role !== "caller" || current.answered) return;
      current.answered = true;
      setState(current, "connecting");
      inOrder(current, async () => {
        try {
          await current.pc.setRemoteDescription({ type: "answer", sdp: message.sdp });
          current.negotiable = true;
          flushRemoteCandidates(current);
        } catch (error) {
          console.warn("calls: the answer was refused:", error);
          hangup(current, "media_failed");
        }
      });
    });
    realtime.on("calls.candidate", (message) => {
      const current = forCall(message);
      if (current) {
        addRemoteCandidate(current, message.candidate);
        return;
      }
      const ring = incoming.get(message.call_id);
      if (ring) ring.candidates.push(message.candidate);  // kept until the user accepts
    });
    realtime.on("calls.renegotiate", (message) => {
      const current = forCall(message);
      if (current) inOrder(current, () => takeRenegotiation(current, message));
    });
    realtime.on("calls.ended", (message) => {
      if (incoming.has(message.call_id)) {
        const ring = incoming.get(message.call_id);
        dismiss(message.call_id);
        if (message.reason !== "answered_elsewhere" && message.reason !== "rejected" && (!call || call.ended)) {
          toast("Missed call from " + nameOf(ring.message.caller));
        }
      }
      const current = forCall(message);
      if (current) end(current, message.reason, { by: message.by });
    });
    realtime.on("close", () => {
      socketDown = true;
      if (call && !call.ended && (!call.pc || call.pc.connectionState !== "connected")) setState(call, "reconnecting");
    });
    realtime.on("open", () => {
      if (!socketDown) return;
      socketDown = false;
      if (call && !call.ended && (call.invited || call.answered)) resume(call);
      goodbyes.splice(0).forEach((message) => {
        realtime.request({ type: "calls.resume", call_id: message.call_id })
          .then(() => realtime.request(message))
          .catch(() => {});  // already over at the server: nothing left to end
      });
    });
    // Leaving anyway: say goodbye now rather than leave the other side waiting for the grace period.
    addEventListener("pagehide", () => {
      if (call && !call.ended && (call.invited || call.answered)) realtime.send({ type: "calls.hangup", call_id: call.id, reason: "hangup" });
    });

    // Call links open the call here, without leaving the page.
    document.addEventListener("click", (event) => {
      if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
      const link = event.target.closest && event.target.closest("a[href]");
      if (!link || link.target) return;
      const url = new URL(link.href, location.href);
      if (url.origin !== location.origin || url.pathname !== "/calls/call" || !url.searchParams.get("to")) return;
      event.preventDefault();
      place(url.searchParams.get("to"), url.searchParams.get("media"));
    });

    // The call page places its call.
    const page = document.querySelector("[data-call-page]");
    if (page) {
      const start = () => place(page.dataset.to, page.dataset.media, { displayName: page.dataset.displayName });
      const button = page.querySelector("[data-call-page-start]");
      if (button) button.addEventListener("click", start);
      if (page.hasAttribute("data-autostart")) {
        if (button) button.hidden = true;
        start();
      }
    }
  }

  function toast(text) {
    const note = element("p", { class: "calls-toast", role: "status", text });
    document.body.appendChild(note);
    setTimeout(() => note.remove(), 6000);
  }

  // The history page's times, in the reader's own zone.
  function localTimes() {
    if (typeof Intl === "undefined") return;
    const format = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
    document.querySelectorAll(".calls-list time[datetime]").forEach((node) => {
      const moment = new Date(node.getAttribute("datetime"));
      if (!isNaN(moment)) { node.title = node.textContent + " UTC"; node.textContent = format.format(moment); }
    });
  }

  function init() {
    localTimes();
    realtime = window.everything && window.everything.realtime;
    if (!realtime) return;  // signed out: no socket, no calls
    wire();
  }

  window.everythingCalls = {
    get peer() { return call && call.pc; },
    get call() { return call ? { id: call.id, role: call.role, media: call.media, state: call.state, reason: call.reason, answered: call.answered } : null; },
    place,
    accept(withVideo) { const ids = [...incoming.keys()]; return ids.length ? accept(ids[ids.length - 1], withVideo) : null; },
    hangup() { hangup(call); },
  };

  if (window.everything && window.everything.realtime) init();
  else document.addEventListener("DOMContentLoaded", init, { once: true });
})();
