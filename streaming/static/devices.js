// Microphone and speaker: <select>s filled from navigator.mediaDevices.enumerateDevices(). The chosen
// microphone is the one Start asks for (getUserMedia); the chosen speaker plays the avatar's voice through
// HTMLMediaElement.setSinkId where the browser has it (the page says so where it does not). Browsers name
// the devices only once the page may use the microphone: the lists are filled again after Start and
// whenever a device comes or goes.
"use strict";
(function () {
  const SINK = "setSinkId" in HTMLMediaElement.prototype;
  const notes = [];

  function fillSelect(select, devices, what) {
    const keep = select.value;
    select.textContent = "";
    devices.forEach((d, i) => {
      const o = document.createElement("option");
      o.value = d.deviceId;
      o.textContent = d.label || `${what} ${i + 1}` + (d.deviceId === "default" || !d.deviceId ? " (default)" : "");
      select.appendChild(o);
    });
    if (!devices.length) {
      const o = document.createElement("option");
      o.value = ""; o.textContent = `(no ${what} found)`;
      select.appendChild(o);
    }
    if ([...select.options].some((o) => o.value === keep)) select.value = keep;
  }

  async function refresh() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) {
      $("deviceNote").textContent = "this browser does not list its devices (a secure context is needed: https or localhost)";
      return;
    }
    const devices = await navigator.mediaDevices.enumerateDevices();
    fillSelect($("mic"), devices.filter((d) => d.kind === "audioinput"), "microphone");
    fillSelect($("speaker"), devices.filter((d) => d.kind === "audiooutput"), "speaker");
  }

  async function applySpeaker() {
    if (!SINK) return;
    try {
      await $("avatar").setSinkId($("speaker").value);
      $("deviceNote").textContent = notes.join(" ");
    } catch (e) {
      $("deviceNote").textContent = `the speaker cannot be used: ${e.message}`;
    }
  }

  if (!SINK) {
    notes.push("This browser cannot choose the speaker (no setSinkId): the voice plays on the system's default output.");
    $("speaker").disabled = true;
    $("deviceNote").textContent = notes.join(" ");
  }
  emolive.micConstraints = () => {
    const id = $("mic").value;
    return id && id !== "default" ? { deviceId: { exact: id } } : {};
  };
  emolive.refreshDevices = refresh;
  emolive.onSession.push(() => refresh().then(applySpeaker));
  $("speaker").onchange = applySpeaker;
  if (navigator.mediaDevices) navigator.mediaDevices.addEventListener("devicechange", refresh);
  refresh();
})();
