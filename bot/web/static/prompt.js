// Live validation for the prompt editor: sends the form to /prompts/check (nothing is stored) and
// shows the pack validator's messages beside each field, plus a preview of the post. The form works
// without this script: saving runs the same validator and shows the same messages.
"use strict";
(function () {
  const form = document.getElementById("prompt-form");
  if (!form) return;
  const preview = document.getElementById("preview");
  let timer = null;
  let seq = 0;

  function text(tag, value, cls) {
    const el = document.createElement(tag);
    el.textContent = value;
    if (cls) el.className = cls;
    return el;
  }

  function show(data) {
    form.querySelectorAll(".field-error").forEach(function (el) { el.textContent = ""; });
    const top = document.getElementById("err-form");
    if (top) top.textContent = "";
    Object.keys(data.errors).forEach(function (name) {
      const el = document.getElementById("err-" + name);
      if (el) el.textContent = data.errors[name].join(" ");
    });
    preview.replaceChildren();
    const embed = data.preview;
    if (!embed) { preview.appendChild(text("p", "Choose an excerpt to see the post.")); return; }
    preview.appendChild(text("h3", embed.title || ""));
    preview.appendChild(text("p", embed.description || ""));
    (embed.fields || []).forEach(function (f) {
      preview.appendChild(text("h4", f.name));
      preview.appendChild(text("p", f.value));
    });
    if (embed.footer) preview.appendChild(text("p", embed.footer.text, "foot"));
  }

  function check() {
    const mine = ++seq;
    fetch(form.dataset.check, { method: "POST", body: new FormData(form), credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data && mine === seq) show(data); })
      .catch(function () { /* the server-side check on save still applies */ });
  }

  form.addEventListener("input", function (event) {
    const t = event.target;
    if (t.type === "range") {
      const out = document.getElementById("out_" + t.id.split("_")[1]);
      if (out) out.textContent = t.value;
    }
    clearTimeout(timer);
    timer = setTimeout(check, 300);
  });
})();
