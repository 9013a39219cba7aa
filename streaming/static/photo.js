// The avatar from a photo: the chosen file goes to the session as a `set_avatar` message (a data URL); the
// server builds the avatar as `emolive avatar create` does and swaps it in while the stream goes on. Its
// answer is a `state` (the new avatar) or an `error` with the same message the command line prints. A photo
// chosen before Start is sent when the session opens; one the server took is sent again to the next sessions.
"use strict";
(function () {
  let seq = 0, pending = null, kept = null, waiting = null;  // waiting: a photo chosen before a session

  function status(text, isError) {
    $("avatarStatus").textContent = text;
    $("avatarStatus").className = isError ? "error" : "note";
  }

  function submit(photo) {
    const id = `avatar-${++seq}`;
    if (!emolive.send({ type: "set_avatar", id, name: photo.name, image: photo.image })) {
      waiting = photo;
      status(`${photo.name}: sent when the session starts`);
      return;
    }
    pending = { id, photo };
    status(`building the avatar from ${photo.name} ...`);
  }

  function choose() {
    const file = $("photo").files[0];
    $("photo").value = "";  // the same file may be chosen again
    if (!file) return;
    if (file.size === 0) { status(`empty file: ${file.name}`, true); return; }
    const limit = emolive.maxImageBytes;
    if (limit && file.size > limit) {  // the server's limit (hello.max_image_bytes): not sent at all
      status(`too_large: image: ${file.size} bytes, over ${limit}`, true);
      return;
    }
    const reader = new FileReader();
    reader.onload = () => submit({ name: file.name, image: reader.result });
    reader.onerror = () => status(`cannot read ${file.name}: ${reader.error && reader.error.message}`, true);
    reader.readAsDataURL(file);
  }

  emolive.handlers.push((msg) => {
    if (!pending || msg.id !== pending.id) return;
    if (msg.type === "state") {
      kept = pending.photo;
      const notes = (msg.avatar && msg.avatar.warnings) || [];
      status(`avatar made from ${pending.photo.name}` + (notes.length ? ` (${notes.join("; ")})` : ""));
    } else if (msg.type === "error") {
      status(`${msg.code}: ${msg.message}`, true);
    }
    pending = null;
  });
  emolive.onSession.push(() => {
    const photo = waiting || kept;
    waiting = null;
    if (photo) submit(photo);
  });
  $("photo").onchange = choose;
})();
