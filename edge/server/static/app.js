// The live page: one WebSocket for events, a polled JPEG for the view, fetch for settings.
// Plain JavaScript, no build step. Text from the server is only ever set with textContent.
"use strict";

(function () {
  const params = new URLSearchParams(location.hash.slice(1));
  // A token (needed only off loopback) travels in the URL fragment, which browsers never send.
  const token = params.get("token");
  const authHeaders = token ? { Authorization: "Bearer " + token } : {};
  const TRACK_TTL_MS = 1500;
  const MAX_ITEMS = 50;
  // An alert older than this (server clock) is history: shown, never announced.
  const LIVE_FOR_S = 5;

  const el = (id) => document.getElementById(id);
  const connection = el("connection");
  const feedback = el("control-feedback");
  const tracks = new Map(); // entity id -> {event, seenAt}
  const alertItems = new Map(); // entity id -> <li> of its latest alert
  let settings = null;
  let retryMs = 500;
  let lastSeq = null; // resume from here after a reconnect: nothing missed, nothing twice
  let clockOffsetS = 0; // server clock - this device's clock, from the HTTP Date header
  let refused = false; // a token problem: retrying cannot help

  function setConnection(state, text) {
    connection.dataset.state = state;
    connection.textContent = text;
  }

  function serverNow() {
    return Date.now() / 1000 + clockOffsetS;
  }

  function learnClock(response) {
    const date = Date.parse(response.headers.get("Date") || "");
    if (!Number.isNaN(date)) clockOffsetS = date / 1000 - Date.now() / 1000;
  }

  function tokenProblem(reason) {
    refused = true;
    const what = token ? "The token in this page's address is wrong." :
      "This server needs a token: open the address printed by `vigil360 serve` (it ends in #token=…).";
    setConnection("closed", what + (reason ? " (" + reason + ")" : ""));
  }

  function announce(event) {
    // Only the sentence is spoken; role, distance and time stay in the list for whoever reads on.
    const region = event.urgent ? el("announce-urgent") : el("announce");
    region.textContent = (event.urgent ? "Urgent: " : "") + event.sentence;
  }

  function addAlert(event) {
    const live = serverNow() - event.emit_time <= LIVE_FOR_S;
    const list = !live ? el("history") : event.urgent ? el("urgent") : el("alerts");
    const item = document.createElement("li");
    item.dataset.entity = event.entity_id;
    const sentence = document.createElement("p");
    sentence.className = "sentence";
    sentence.textContent = (event.urgent ? "Urgent: " : "") + event.sentence;
    const details = document.createElement("p");
    details.className = "details";
    const distance = event.distance_m == null ? "distance unknown" : event.distance_m.toFixed(1) + " m";
    const when = new Date((event.emit_time - clockOffsetS) * 1000).toLocaleTimeString();
    details.textContent = `${event.role} ${event.entity_id}, ${event.clock_hour} o'clock, ${distance}, ` +
      `risk ${Math.round(event.risk * 100)}%, at ${when}`;
    item.append(sentence, details);
    list.append(item);
    while (list.children.length > MAX_ITEMS) list.firstElementChild.remove();
    list.scrollTop = list.scrollHeight;
    alertItems.set(event.entity_id, item);
    if (live) announce(event);
  }

  function addCaption(event) {
    const item = alertItems.get(event.entity_id);
    if (!item) return;
    const refined = document.createElement("p");
    refined.className = "refined";
    const caption = [event.caption.appearance, event.caption.motion].filter(Boolean).join("; ");
    refined.textContent = "Refined: " + (event.sentence || caption);
    item.append(refined);
  }

  const STATE_WORDS = { running: "running", degraded: "degraded", failed: "FAILED", ended: "ended",
    stopped: "stopped" };

  function showHealth(event) {
    const loopState = el("loop-state");
    loopState.dataset.state = event.state;
    const what = event.component === "loop" ? "The loop" : event.component;
    loopState.textContent = `${what} ${STATE_WORDS[event.state] || event.state}: ${event.message}`;
  }

  function onEvent(event) {
    if (event.seq != null) lastSeq = event.seq;
    if (event.type === "alert") addAlert(event);
    else if (event.type === "caption") addCaption(event);
    else if (event.type === "health") showHealth(event);
    else if (event.type === "track") tracks.set(event.entity_id, { event, seenAt: performance.now() });
  }

  async function checkHealth() {
    try {
      const response = await fetch("/healthz", { cache: "no-store" });
      const health = await response.json();
      if (health.status === "error") {
        showHealth({ component: "loop", state: "failed", message: health.loop_error || "no alerts are made" });
      } else if (health.status === "ended") {
        showHealth({ component: "loop", state: "ended", message: "no more alerts will come" });
      }
    } catch (_) { /* the connection line already says when the server is gone */ }
  }

  function connect() {
    if (refused) return;
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const protocols = ["vigil360.v1"];
    if (token) protocols.push("bearer." + token);
    // First load: the last alerts as history; a reconnect: exactly what was missed.
    const resume = lastSeq == null ? "replay=10" : "since=" + lastSeq;
    const socket = new WebSocket(scheme + location.host + "/v1/events?track_hz=5&" + resume, protocols);
    socket.onopen = () => {
      retryMs = 500;
      setConnection("open", "Connected: alerts are announced as they arrive.");
      checkHealth();
    };
    socket.onmessage = (message) => onEvent(JSON.parse(message.data));
    socket.onclose = (closing) => {
      if (closing.code === 1008 && /token/.test(closing.reason)) {
        tokenProblem(closing.reason);
        return;
      }
      const why = closing.reason ? " (" + closing.reason + ")" : "";
      setConnection("closed", "Disconnected" + why + ". Reconnecting…");
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 10000);
    };
  }

  // --- the view: a polled JPEG (outlined by the server) and a text list of what is tracked ----

  const frame = el("frame");

  async function refreshFrame() {
    if (refused) return;
    try {
      const response = await fetch("/v1/frame.jpg?width=960", { headers: authHeaders, cache: "no-store" });
      if (response.ok) {
        const url = URL.createObjectURL(await response.blob());
        const previous = frame.src;
        frame.src = url;
        if (previous.startsWith("blob:")) URL.revokeObjectURL(previous);
      }
    } catch (_) { /* the connection line already says when the server is gone */ }
    setTimeout(refreshFrame, 200);
  }

  function describeTracks() {
    const now = performance.now();
    const described = [];
    for (const [id, { event, seenAt }] of tracks) {
      if (now - seenAt > TRACK_TTL_MS) { tracks.delete(id); continue; }
      described.push(`${id}${event.flagged ? " (flagged)" : ""} at yaw ${Math.round(event.box.yaw)}°`);
    }
    const text = described.length ? "Tracked: " + described.join(", ") + "." : "No tracked entities.";
    if (el("tracked").textContent !== text) el("tracked").textContent = text;
  }

  // --- controls --------------------------------------------------------------------------------

  function showSettings() {
    const speech = settings.speech;
    el("mute").setAttribute("aria-pressed", String(speech.muted));
    // A control being used keeps what the user is choosing; the others show the server's value.
    const show = (id, value) => { if (document.activeElement !== el(id)) el(id).value = value; };
    show("verbosity", speech.verbosity);
    show("directions", speech.directions);
    show("spatial", speech.spatial);
    if (document.activeElement !== el("earcons")) el("earcons").checked = speech.earcons;
    show("sensitivity", speech.min_risk);
    el("sensitivity-value").textContent = Number(el("sensitivity").value).toFixed(2);
  }

  async function loadSettings() {
    const response = await fetch("/v1/config", { headers: authHeaders, cache: "no-store" });
    learnClock(response);
    if (response.status === 401) {
      tokenProblem("");
      return;
    }
    if (response.ok) {
      settings = await response.json();
      showSettings();
    }
  }

  async function changeSpeech(change, said) {
    const response = await fetch("/v1/config", {
      method: "PUT",
      headers: { ...authHeaders, "Content-Type": "application/json" },
      body: JSON.stringify({ speech: change }),
    });
    const body = await response.json();
    if (response.ok) {
      settings = body;
      feedback.textContent = said;
    } else {
      const reason = Array.isArray(body.detail) ? body.detail.map((d) => d.msg).join("; ") : body.detail;
      feedback.textContent = "Not changed: " + reason;
    }
    if (settings) showSettings();
  }

  el("mute").addEventListener("click", () => {
    const muted = !(settings && settings.speech.muted);
    changeSpeech({ muted }, muted ? "Speech muted." : "Speech on.");
  });
  el("verbosity").addEventListener("change", (e) => changeSpeech({ verbosity: e.target.value },
    "Verbosity " + e.target.value + "."));
  el("directions").addEventListener("change", (e) => changeSpeech({ directions: e.target.value },
    "Directions in " + (e.target.value === "clock" ? "clock hours." : "words.")));
  el("spatial").addEventListener("change", (e) => changeSpeech({ spatial: e.target.value },
    e.target.value === "stereo" ? "Alerts come from their direction." : "Alerts in plain sound."));
  el("earcons").addEventListener("change", (e) => changeSpeech({ earcons: e.target.checked },
    e.target.checked ? "Alert tones on." : "Alert tones off."));
  el("sensitivity").addEventListener("input", (e) => {
    el("sensitivity-value").textContent = Number(e.target.value).toFixed(2);
  });
  el("sensitivity").addEventListener("change", (e) => changeSpeech({ min_risk: Number(e.target.value) },
    "Sensitivity " + Number(e.target.value).toFixed(2) + "."));
  el("repeat").addEventListener("click", async () => {
    const response = await fetch("/v1/repeat", { method: "POST", headers: authHeaders });
    feedback.textContent = response.ok ? "Repeated: " + (await response.json()).sentence : "No alert to repeat yet.";
  });
  // Another client (a phone, the keyboard on the device) may change settings: show what is current
  // whenever this page comes back into view, and every few seconds.
  window.addEventListener("focus", () => { if (!refused) loadSettings(); });
  setInterval(() => { if (!refused && document.visibilityState === "visible") loadSettings(); }, 5000);

  loadSettings().catch(() => {}).finally(connect);
  refreshFrame();
  setInterval(describeTracks, 500);
})();
