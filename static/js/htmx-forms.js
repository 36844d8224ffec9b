// What forms sent by htmx need on every page, staff and client (loaded by base.html):
// - An expired form (Django's CSRF check refused it: 403 with templates/403_csrf.html) says
//   so, as it does without JavaScript: htmx drops 4xx answers, which left staff pages
//   silent and the wizard blaming the connection. The page's message (in the page's
//   language, from the server) takes the place of <main>; the address stays the page's own,
//   so reloading it brings a fresh form. So does the staff portal's "not here for you" (404,
//   templates/staff/404.html), for a booking handed to another counsellor meanwhile.
// - A field re-sent out of band with its error (the booking list's filters) keeps the control
//   being typed in: replacing it would throw a date input back to its first part mid-year.
// - A swap that takes away the control in use (the booking list's "Next page" is inside the
//   results it replaces) left focus on <body>, and the next Tab started again at the top of
//   the page: focus goes to the region swapped in, when it takes focus (tabindex="-1"), or
//   else to the first part of it that does (the move page's picker, inside its region).
// - A request that fails (the server down or in error, the network lost, or no answer in
//   the 30 seconds of base.html's htmx-config) says so where it is seen whatever the scroll:
//   a message fixed at the foot of the window, read out (role="alert"), again at each
//   failure, gone at the next answer. Focus stays on the control used, to try again; what
//   was typed is still there. Text in the page's language, from this script's element
//   (base.html). Refusals with a page of their own (above, and the wizard's 400/409/429 in
//   wizard.js) are not failures.
// - Back or Forward to a page htmx could not fetch left the address bar saying one page and
//   the screen showing another: the browser loads it itself, and shows its own error if it must.
(function () {
  "use strict";

  var script = document.currentScript;

  function isPageOfItsOwn(xhr) {
    var text = typeof xhr.responseText === "string" ? xhr.responseText : "";
    return (
      (xhr.status === 403 && text.indexOf("data-form-expired") !== -1) ||
      ((xhr.status === 404 || xhr.status === 410) && text.indexOf("data-page-gone") !== -1)
    );
  }

  function failureSaid() {
    return document.getElementById("request-failed");
  }

  function sayFailed(kind) {
    var old = failureSaid();
    if (old) {
      old.remove(); // put in again, so that it is read out again
    }
    var note = document.createElement("div");
    note.id = "request-failed";
    note.className = "request-failed";
    note.setAttribute("role", "alert");
    var text = document.createElement("p");
    text.textContent =
      (script && script.getAttribute("data-failed-" + kind)) || "Sorry, that did not go through. Please try again.";
    var close = document.createElement("button");
    close.type = "button";
    close.className = "btn-secondary btn-small";
    close.textContent = (script && script.getAttribute("data-close")) || "Close";
    close.addEventListener("click", function () {
      note.remove();
    });
    note.appendChild(text);
    note.appendChild(close);
    document.body.appendChild(note);
  }

  document.addEventListener("htmx:responseError", function (event) {
    sayFailed(event.detail.xhr.status >= 500 ? "server" : "other");
  });
  document.addEventListener("htmx:sendError", function () {
    sayFailed("network");
  });
  document.addEventListener("htmx:timeout", function () {
    sayFailed("network");
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var note = failureSaid();
    if (note && event.detail.successful) {
      note.remove();
    }
  });
  document.addEventListener("htmx:historyCacheMissLoadError", function () {
    window.location.reload();
  });
  document.addEventListener("htmx:historyCacheMiss", function (event) {
    event.detail.xhr.addEventListener("error", function () {
      window.location.reload(); // htmx itself hears nothing of a network error here
    });
  });

  function showInPlaceOfMain(markup) {
    var page = new DOMParser().parseFromString(markup, "text/html");
    var fresh = page.getElementById("main");
    var main = document.getElementById("main");
    if (!fresh || !main) {
      return false;
    }
    main.innerHTML = fresh.innerHTML;
    document.title = page.title;
    main.focus();
    return true;
  }

  // On <html>, before htmx goes on and before django-htmx's debug script (on document) puts
  // the answer in place of the whole page.
  document.documentElement.addEventListener("htmx:beforeOnLoad", function (event) {
    var xhr = event.detail.xhr;
    if (isPageOfItsOwn(xhr) && showInPlaceOfMain(xhr.responseText)) {
      var note = failureSaid();
      if (note) {
        note.remove(); // an answer came: the page says what it is
      }
      event.stopPropagation();
      event.preventDefault(); // htmx stops here: no swap, no "check your connection"
    }
  });

  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var target = event.detail.target;
    var active = document.activeElement;
    if (!target || !active || !active.id || active === target || !target.contains(active)) {
      return;
    }
    var group = event.detail.fragment.firstElementChild;
    var control = group && group.querySelector("#" + CSS.escape(active.id));
    if (!control || control.parentNode !== group || control.tagName !== active.tagName) {
      return; // not a field group as staff/_field.html writes it: htmx swaps it as usual
    }
    event.detail.shouldSwap = false;
    // The control in use keeps its value; the rest of its attributes come from the answer.
    var i;
    for (i = active.attributes.length - 1; i >= 0; i--) {
      if (!control.hasAttribute(active.attributes[i].name)) {
        active.removeAttribute(active.attributes[i].name);
      }
    }
    for (i = 0; i < control.attributes.length; i++) {
      if (control.attributes[i].name !== "value") {
        active.setAttribute(control.attributes[i].name, control.attributes[i].value);
      }
    }
    // The label, hint and error around it, from the answer.
    var nodes = Array.prototype.slice.call(group.childNodes);
    var at = nodes.indexOf(control);
    Array.prototype.slice.call(target.childNodes).forEach(function (node) {
      if (node !== active) {
        target.removeChild(node);
      }
    });
    nodes.slice(0, at).forEach(function (node) {
      target.insertBefore(node, active);
    });
    nodes.slice(at + 1).forEach(function (node) {
      target.appendChild(node);
    });
  });

  var lostIn = null; // the id of the region being replaced, when it holds the focus
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    var active = document.activeElement;
    lostIn = target && target.id && active && active !== document.body && target.contains(active) ? target.id : null;
  });
  document.addEventListener("htmx:afterSettle", function () {
    var id = lostIn;
    lostIn = null;
    var active = document.activeElement;
    if (!id || (active && active !== document.body && active.isConnected)) {
      return; // htmx kept it (same id, autofocus), or a page's script placed it
    }
    var region = document.getElementById(id);
    if (region && !region.hasAttribute("tabindex")) {
      region = region.querySelector('[tabindex="-1"]');
    }
    if (region) {
      region.focus();
    }
  });
})();
