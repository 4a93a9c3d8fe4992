// The composer: Ctrl+Enter (or Cmd+Enter) sends the reply box's form. Loaded with each
// workspace swap, so it listens once, on the document.
(function () {
  if (window.careinboxComposer) return;
  window.careinboxComposer = true;
  document.addEventListener("keydown", function (event) {
    var box = event.target;
    if (!box || !box.matches || !box.matches("textarea[data-composer-text]")) return;
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
    event.preventDefault();
    var form = box.form;
    var submit = form && form.querySelector("#step-submit");
    if (!form || (submit && submit.disabled)) return;
    if (form.requestSubmit) form.requestSubmit(submit || undefined);
    else form.submit();
  });
})();
