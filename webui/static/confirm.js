// A second step before a button that cannot be taken back (Reject, Disable): a button with
// data-confirm="question" opens a <dialog>; only its confirming button submits the form,
// with confirm=yes added, so the server acts at once. Without JavaScript the form posts
// without confirm=yes and the server answers with a confirmation page: either way a single
// click never acts.
(function () {
  "use strict";

  var dialog = null;
  var text = null;
  var yes = null;
  var no = null;
  var pending = null;

  function build() {
    dialog = document.createElement("dialog");
    dialog.className = "confirm-dialog";
    dialog.setAttribute("data-confirm-dialog", "");
    text = document.createElement("p");
    var choices = document.createElement("form");
    choices.method = "dialog"; // closes the dialog with the button's value as returnValue
    choices.className = "confirm-actions";
    no = document.createElement("button");
    no.value = "no";
    no.textContent = "Cancel";
    yes = document.createElement("button");
    yes.value = "yes";
    yes.className = "danger";
    choices.append(no, yes);
    dialog.append(text, choices);
    document.body.append(dialog);
    dialog.addEventListener("close", function () {
      var button = pending;
      pending = null;
      if (dialog.returnValue !== "yes" || !button || !button.form) {
        return;
      }
      var form = button.form;
      var flag = form.querySelector("input[name=confirm]");
      if (!flag) {
        flag = document.createElement("input");
        flag.type = "hidden";
        flag.name = "confirm";
        form.append(flag);
      }
      flag.value = "yes";
      form.requestSubmit(button); // keeps the button's formaction (Reject shares a form)
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target instanceof Element ? event.target.closest("button[data-confirm]") : null;
    if (!button || !button.form) {
      return;
    }
    event.preventDefault();
    if (!dialog) {
      build();
    }
    pending = button;
    text.textContent = button.getAttribute("data-confirm");
    yes.textContent = button.textContent.trim();
    dialog.returnValue = "";
    dialog.showModal();
    no.focus(); // the safe choice is the default
  });
})();
