// Copy buttons: <button class="copy" data-copy="text">Copy</button>
document.addEventListener("click", function (event) {
  var button = event.target.closest("button[data-copy]");
  if (!button) return;
  event.preventDefault();
  var text = button.getAttribute("data-copy");
  var done = function () { button.textContent = "Copied"; setTimeout(function () { button.textContent = "Copy"; }, 1500); };
  var fallback = function () {
    var area = document.createElement("textarea"); area.value = text; document.body.appendChild(area); area.select();
    document.execCommand("copy"); document.body.removeChild(area); done();
  };
  if (navigator.clipboard && window.isSecureContext) { navigator.clipboard.writeText(text).then(done, fallback); }
  else { fallback(); }
});

// Forms that destroy something ask first: <form data-confirm="Remove x?">
document.addEventListener("submit", function (event) {
  var question = event.target.getAttribute && event.target.getAttribute("data-confirm");
  if (question && !window.confirm(question)) event.preventDefault();
});

// Live template preview: posts the editor's form (CSRF token included) to the portal's preview
// endpoint and shows the result in the sandboxed iframe.
(function () {
  var form = document.getElementById("template-form");
  if (!form || !form.dataset.previewUrl) return;
  var timer = null, seq = 0;
  function show(id, text) { var el = document.getElementById(id); if (el) el.textContent = text || ""; }
  function refresh() {
    var mine = ++seq;
    fetch(form.dataset.previewUrl, { method: "POST", body: new FormData(form), credentials: "same-origin",
                                     headers: { "X-Requested-With": "fetch" } })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        if (mine !== seq) return;
        show("preview-error", data.error);
        if (data.error) return;
        show("preview-subject", data.subject);
        show("preview-text", data.text);
        show("preview-missing", data.missing_variables.length ? "Missing values (rendered empty): " + data.missing_variables.join(", ") : "");
        document.getElementById("preview-html").srcdoc = data.srcdoc;
      })
      .catch(function () { if (mine === seq) show("preview-error", "Preview unavailable."); });
  }
  function schedule() { clearTimeout(timer); timer = setTimeout(refresh, 350); }
  form.addEventListener("input", schedule);
  document.querySelectorAll('[form="template-form"]').forEach(function (el) {
    el.addEventListener("input", schedule); el.addEventListener("change", schedule);
  });
  refresh();
})();

// DNS provider form: show only the chosen provider's credential fields.
(function () {
  var form = document.getElementById("provider-form");
  if (!form) return;
  var select = form.querySelector("select[name=provider]");
  function update() {
    form.querySelectorAll("fieldset[data-provider]").forEach(function (set) { set.hidden = set.dataset.provider !== select.value; });
  }
  select.addEventListener("change", update);
  update();
})();
