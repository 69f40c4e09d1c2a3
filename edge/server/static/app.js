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

  const el = (id) => document.getElementById(id);
  const connection = el("connection");
  const feedback = el("control-feedback");
  const tracks = new Map(); // entity id -> {event, seenAt}
  const alertItems = new Map(); // entity id -> <li> of its latest alert
  let settings = null;
  let retryMs = 500;

  function setConnection(state, text) {
    connection.dataset.state = state;
    connection.textContent = text;
  }

  function clockText(event) {
    return event.clock_hour + " o'clock";
  }

  const seenAlerts = new Set(); // a reconnect replays recent alerts: show each once

  function addAlert(event) {
    const key = event.entity_id + "@" + event.emit_time;
    if (seenAlerts.has(key)) return;
    seenAlerts.add(key);
    const list = event.urgent ? el("urgent") : el("alerts");
    const item = document.createElement("li");
    item.dataset.entity = event.entity_id;
    const sentence = document.createElement("p");
    sentence.className = "sentence";
    sentence.textContent = (event.urgent ? "Urgent: " : "") + event.sentence;
    const details = document.createElement("p");
    details.className = "details";
    const distance = event.distance_m == null ? "distance unknown" : event.distance_m.toFixed(1) + " m";
    const when = new Date(event.emit_time * 1000).toLocaleTimeString();
    details.textContent = `${event.role} ${event.entity_id}, ${clockText(event)}, ${distance}, ` +
      `risk ${Math.round(event.risk * 100)}%, at ${when}`;
    item.append(sentence, details);
    list.append(item);
    while (list.children.length > MAX_ITEMS) list.firstElementChild.remove();
    list.scrollTop = list.scrollHeight;
    alertItems.set(event.entity_id, item);
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

  function onEvent(event) {
    if (event.type === "alert") addAlert(event);
    else if (event.type === "caption") addCaption(event);
    else if (event.type === "track") tracks.set(event.entity_id, { event, seenAt: performance.now() });
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const protocols = ["vigil360.v1"];
    if (token) protocols.push("bearer." + token);
    const socket = new WebSocket(scheme + location.host + "/v1/events?track_hz=5&replay=10", protocols);
    socket.onopen = () => {
      retryMs = 500;
      setConnection("open", "Connected: alerts are announced as they arrive.");
    };
    socket.onmessage = (message) => onEvent(JSON.parse(message.data));
    socket.onclose = (closing) => {
      const why = closing.reason ? " (" + closing.reason + ")" : "";
      setConnection("closed", "Disconnected" + why + ". Reconnecting…");
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 10000);
    };
  }

  // --- the view: a polled JPEG with outlines drawn from track events ------------------------

  const frame = el("frame");
  const overlay = el("overlay");

  async function refreshFrame() {
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

  function drawOverlay() {
    const width = overlay.clientWidth, height = overlay.clientHeight;
    if (overlay.width !== width || overlay.height !== height) {
      overlay.width = width;
      overlay.height = height;
    }
    const context = overlay.getContext("2d");
    context.clearRect(0, 0, width, height);
    const now = performance.now();
    const described = [];
    for (const [id, { event, seenAt }] of tracks) {
      if (now - seenAt > TRACK_TTL_MS) { tracks.delete(id); continue; }
      // Equirectangular: yaw -180..180 maps to x 0..W (ahead at the centre), pitch 90..-90 to y 0..H.
      const x = (event.box.yaw + 180) / 360 * width, y = (90 - event.box.pitch) / 180 * height;
      const w = event.box.width / 360 * width, h = event.box.height / 180 * height;
      context.lineWidth = event.flagged ? 4 : 2;
      context.strokeStyle = event.flagged ? "#ff4d4d" : "#ffd400";
      context.fillStyle = context.strokeStyle;
      context.font = "bold 16px system-ui, sans-serif";
      // A box across the seam (directly behind) is drawn on both edges.
      for (const shift of [0, width, -width]) {
        const left = x - w / 2 + shift;
        if (left + w < 0 || left > width) continue;
        context.strokeRect(left, y - h / 2, w, h);
        context.fillText(id, left + 3, Math.max(16, y - h / 2 - 4));
      }
      described.push(`${id}${event.flagged ? " (flagged)" : ""} at yaw ${Math.round(event.box.yaw)}°`);
    }
    el("tracked").textContent = described.length ? "Tracked: " + described.join(", ") + "." : "No tracked entities.";
    requestAnimationFrame(drawOverlay);
  }

  // --- controls --------------------------------------------------------------------------------

  function showSettings() {
    const speech = settings.speech;
    const mute = el("mute");
    mute.setAttribute("aria-pressed", String(speech.muted));
    mute.textContent = speech.muted ? "Unmute speech" : "Mute speech";
    el("verbosity").value = speech.verbosity;
    el("directions").value = speech.directions;
    el("spatial").value = speech.spatial;
    el("earcons").checked = speech.earcons;
    el("sensitivity").value = speech.min_risk;
    el("sensitivity-value").textContent = Number(speech.min_risk).toFixed(2);
  }

  async function loadSettings() {
    const response = await fetch("/v1/config", { headers: authHeaders });
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

  loadSettings();
  connect();
  refreshFrame();
  requestAnimationFrame(drawOverlay);
})();
