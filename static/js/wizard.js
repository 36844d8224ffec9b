// The client journey's small helpers, on the pages with forms (the booking wizard, "Move your
// session", the status lookup, the waitlist, the counsellor filter).
// Everything works without this file; it only makes htmx swaps behave as a full page load
// would: refusals shown, focus moved, the reader's place kept, the language switch returning
// to the page shown.
(function () {
  "use strict";

  // Refusals that come back as the page explaining what to do: 400 (a choice is missing),
  // 409 (a time was taken meanwhile), 429 (too many tries). htmx drops 4xx answers, and with
  // DEBUG django-htmx's script puts a 400 in place of the whole page, as if it were Django's
  // error page. Only the fragment the request asked for counts; anything else (a proxy's
  // error page) is a failure, which htmx-forms.js announces.
  var SHOWN_STATUSES = [400, 409, 429];

  function isShownRefusal(detail) {
    var xhr = detail.xhr;
    var target = detail.target;
    return (
      SHOWN_STATUSES.indexOf(xhr.status) !== -1 &&
      !!target &&
      !!target.id &&
      typeof xhr.responseText === "string" &&
      xhr.responseText.indexOf('id="' + target.id + '"') !== -1
    );
  }

  // django-htmx's debug script listens on document: stop these answers on the way there.
  document.documentElement.addEventListener("htmx:beforeOnLoad", function (event) {
    if (isShownRefusal(event.detail)) {
      event.stopPropagation();
    }
  });

  // Move focus to the error summary if there is one (GOV.UK pattern), else to the heading,
  // so screen reader and keyboard users start at the top of what changed.
  function focusStart(root) {
    var target = root.querySelector("[data-error-summary]") || root.querySelector("[data-step-heading]");
    if (target) {
      target.focus();
    }
  }

  // The slot picker's day buttons post to the form's action with #slot-picker, so that a page
  // without this file opens the answer at the picker. Here the picker is swapped in place
  // where the reader is; htmx would scroll to the fragment, so the request goes without it.
  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.path = event.detail.path.split("#")[0];
  });

  var swapped = null; // the id of the region being replaced, and the wizard's step in it

  document.addEventListener("htmx:beforeSwap", function (event) {
    if (isShownRefusal(event.detail)) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
    var target = event.detail.target;
    swapped = target && target.id ? { id: target.id, step: target.getAttribute("data-step") } : null;
  });

  document.addEventListener("htmx:afterSettle", function () {
    var previous = swapped;
    swapped = null;
    var region = previous && document.getElementById(previous.id);
    if (!region) {
      return;
    }
    var notice = region.querySelector("[data-notice]");
    if (region.querySelector("[data-error-summary]")) {
      focusStart(region);
    } else if (notice) {
      // "We have sent the email again": read out, as the step around it has not changed.
      notice.focus();
    } else if (previous.id === "wizard-step" && region.getAttribute("data-step") !== previous.step) {
      focusStart(region);
    }
    // Otherwise a single field was checked, a day button brought the picker alone, or the
    // same step was refreshed (other kind of session, counsellor or way of meeting): htmx
    // keeps focus on the control that was used.
  });

  // Scroll anchoring is off in <main> (assets/app.css): htmx swaps would otherwise throw the
  // page to the bottom when a choice refreshes the step.

  // The language switch returns to the page shown: htmx pushes each step's URL, after the
  // footer's `next` was written.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches || !form.matches("[data-language-switcher]")) {
      return;
    }
    var next = form.querySelector("input[name='next']");
    if (next) {
      next.value = window.location.pathname + window.location.search;
    }
  });

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
