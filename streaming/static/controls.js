// The emotion controls: one emotion (buttons), a mixture of two (two selects and the share of the second),
// the intensity slider that applies to either, the prompt box and Interrupt. Each sends a control message
// (set_emotion with `emotion` or `mixture`, and `intensity`); the line under the controls shows the server's
// answer (client.js), never what was merely asked.
"use strict";
(function () {
  const EMOTIONS = ["neutral", "happy", "sad", "angry", "surprised", "fear", "disgusted", "contempt"];
  let chosen = null;  // {emotion} or {mixture}: what the intensity slider re-sends

  const intensity = () => parseFloat($("intensity").value);
  const round2 = (x) => Math.round(x * 100) / 100;

  function apply(choice) {
    chosen = choice;
    emolive.send({ type: "set_emotion", ...choice, intensity: intensity(), transition_ms: 250 });
    for (const b of document.querySelectorAll("#emotions button")) {
      b.classList.toggle("on", choice.emotion !== undefined && b.dataset.emotion === choice.emotion);
    }
  }

  function mixture() {
    // {first: 1 - w, second: w}; a weight of 0 leaves its emotion out, the same emotion twice is that emotion.
    const a = $("mixA").value, b = $("mixB").value, w = round2(parseFloat($("mixW").value));
    if (a === b) return { [a]: 1 };
    const out = {};
    if (w < 1) out[a] = round2(1 - w);
    if (w > 0) out[b] = w;
    return out;
  }

  for (const name of EMOTIONS) {
    const b = document.createElement("button");
    b.textContent = name; b.dataset.emotion = name;
    b.onclick = () => apply({ emotion: name });
    $("emotions").appendChild(b);
    for (const id of ["mixA", "mixB"]) {
      const o = document.createElement("option");
      o.value = name; o.textContent = name;
      $(id).appendChild(o);
    }
  }
  $("mixA").value = "happy";
  $("mixB").value = "surprised";
  const showShare = () => { $("mixWval").textContent = (+$("mixW").value).toFixed(2); };
  showShare();
  $("mixW").oninput = showShare;
  $("mixApply").onclick = () => apply({ mixture: mixture() });
  for (const id of ["mixA", "mixB", "mixW"]) $(id).onchange = () => apply({ mixture: mixture() });
  $("intensity").oninput = () => { $("ival").textContent = $("intensity").value; };
  $("intensity").onchange = () => { if (chosen) apply(chosen); };
  $("promptForm").onsubmit = (e) => {
    e.preventDefault();
    chosen = null;  // the prompt says its own intensity
    for (const button of document.querySelectorAll("#emotions button")) button.classList.remove("on");
    emolive.send({ type: "prompt", text: $("prompt").value, transition_ms: 400 });
  };
  $("interrupt").onclick = () => emolive.send({ type: "interrupt" });
})();
