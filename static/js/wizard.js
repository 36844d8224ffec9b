// The client journey's small helpers. Everything works without this file; it only makes
// focus behave after htmx swaps a step in place, as a full page load would.
(function () {
  "use strict";

  // Move focus to the error summary if there is one (GOV.UK pattern), else to the heading,
  // so screen reader and keyboard users start at the top of what changed.
  function focusStart(root) {
    var target = root.querySelector("[data-error-summary]") || root.querySelector("[data-step-heading]");
    if (target) {
      target.focus();
    }
  }

  var swappedStep = null;

  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    // Rate limits (429) and refusals (409) come back as a whole step explaining what to do.
    if (status === 409 || status === 429) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
    var target = event.detail.target;
    swappedStep = target && target.id === "wizard-step" ? target.getAttribute("data-step") : null;
  });

  document.addEventListener("htmx:afterSettle", function () {
    if (swappedStep === null) {
      // A single field was checked, or a day button brought the picker alone (HX-Retarget):
      // leave focus where the client put it (htmx keeps it on the same control).
      return;
    }
    var step = document.getElementById("wizard-step");
    var previous = swappedStep;
    swappedStep = null;
    if (!step) {
      return;
    }
    if (step.querySelector("[data-error-summary]") || step.getAttribute("data-step") !== previous) {
      focusStart(step);
    }
    // Otherwise the same step was refreshed (other kind of session, counsellor or way of
    // meeting): htmx keeps focus on the control that was used.
  });

  // A failed request (server down, network lost) must not look like nothing happened.
  function announceFailure(event) {
    var form = event.detail.elt && event.detail.elt.closest ? event.detail.elt.closest("form") : null;
    if (!form || form.querySelector("[data-request-failed]")) {
      return;
    }
    var note = document.createElement("p");
    note.className = "error-summary font-semibold text-red-800";
    note.setAttribute("role", "alert");
    note.setAttribute("data-request-failed", "");
    note.textContent = "Sorry, that did not go through. Please check your connection and try again: nothing you typed has been lost.";
    form.insertBefore(note, form.firstChild);
  }
  document.addEventListener("htmx:responseError", announceFailure);
  document.addEventListener("htmx:sendError", announceFailure);

  // Error summary links: focus the field itself and show its label, not just scroll.
  document.addEventListener("click", function (event) {
    var link = event.target.closest("[data-error-summary] a[href^='#']");
    if (!link) {
      return;
    }
    var field = document.getElementById(link.getAttribute("href").slice(1));
    if (!field) {
      return;
    }
    event.preventDefault();
    var label = document.querySelector("label[for='" + field.id + "']");
    var legend = field.closest("fieldset") && field.closest("fieldset").querySelector("legend");
    (legend || label || field).scrollIntoView();
    field.focus({ preventScroll: true });
  });

  // A full page that arrives with errors (no htmx, or a reload) starts at the summary too.
  var summary = document.querySelector("[data-error-summary]");
  if (summary) {
    summary.focus();
  }
})();
