// The staff calendar: FullCalendar fed by /staff/calendar/feed/, a booking side panel
// loaded with htmx, and publishing free slots by selecting a range. No inline script:
// loaded with the page's CSP nonce; FullCalendar takes its style nonce from
// <meta name="csp-nonce">. Times are shown in the clinic's time zone (data-time-zone on
// #calendar), whatever the browser's.
(function () {
  "use strict";

  var el = document.getElementById("calendar");
  if (!el) return;
  var statusBox = document.getElementById("calendar-status");
  if (!window.FullCalendar || !window.ClinicZone) {
    // The controls stay hidden (they only work with the calendar); the list still does.
    statusBox.textContent = "The calendar could not load. Reload the page, or use the booking list.";
    statusBox.hidden = false;
    return;
  }
  // Without JavaScript the page shows only its <noscript> notice: the controls and the
  // calendar appear once this script runs.
  document.querySelectorAll("[data-calendar-ui]").forEach(function (part) {
    part.hidden = false;
  });

  var zone = el.dataset.timeZone || "UTC";

  // The clinic's time zone for FullCalendar: static/js/clinic-zone.js, loaded before this file.
  var clinicZonePlugin = FullCalendar.createPlugin({ name: "mindsettler-clinic-zone", namedTimeZonedImpl: window.ClinicZone });

  // What confirmations say: "Mon 1 Jun, 16:30 IST", in the clinic's zone and 24-hour time.
  // en-GB writes India's zone as GMT+5:30: a locale that has a name for it is preferred.
  var zoneFormats = ["en-GB", "en-IN", "en-US"].map(function (locale) {
    return new Intl.DateTimeFormat(locale, { timeZone: zone, timeZoneName: "short" });
  });
  function zoneName(date) {
    var fallback = "";
    for (var i = 0; i < zoneFormats.length; i++) {
      var name = zoneFormats[i].formatToParts(date).filter(function (part) {
        return part.type === "timeZoneName";
      })[0].value;
      if (!/^(GMT|UTC)[+\-\u2212]/.test(name)) return name;
      fallback = fallback || name;
    }
    return fallback;
  }

  // "10:00 – 12:00 IST", or "00:00 GMT – 03:00 BST" across a change of the clocks.
  function clinicSpan(start, end, withDay) {
    var from = zoneName(start);
    var to = zoneName(end);
    var first = clinicTime(start, withDay) + (from === to ? "" : " " + from);
    return first + " \u2013 " + clinicTime(end, false) + " " + to;
  }

  // Whether the clocks change within an hour of `date` (its wall-clock time may be there twice).
  function nearClockChange(date) {
    var hour = 3600 * 1000;
    return zoneName(new Date(date.getTime() - hour)) !== zoneName(new Date(date.getTime() + hour));
  }

  function clinicTime(date, withDay) {
    var options = { timeZone: zone, hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
    if (withDay) {
      options.weekday = "short";
      options.day = "numeric";
      options.month = "short";
    }
    return date.toLocaleString("en-GB", options);
  }

  // Is a selection inside one day of the clinic's zone? (startStr/endStr are wall-clock
  // times there, "2026-06-01T10:00:00+05:30".) One down to midnight ends at the next day's 00:00.
  function withinOneDay(span) {
    if (span.allDay) return false;
    var day = span.startStr.slice(0, 10);
    var endDay = span.endStr.slice(0, 10);
    if (endDay === day) return true;
    var next = new Date(day + "T00:00:00Z");
    next.setUTCDate(next.getUTCDate() + 1);
    return endDay === next.toISOString().slice(0, 10) && span.endStr.slice(11, 19) === "00:00:00";
  }

  var counsellorSelect = document.getElementById("cal-counsellor");
  var sessionInput = document.getElementById("cal-session");
  var bufferInput = document.getElementById("cal-buffer");

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (e) {
      return "";
    }
  }

  // A POST answered in JSON: {ok, data}. A page instead of JSON means the form had expired
  // (Django's CSRF refusal, 403) or the sign-in had (a redirect to the sign-in page).
  var EXPIRED = "This page has expired (it was open a long time, or you were signed out). Reload it, then try again.";

  function post(url, params) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(params),
    }).then(function (response) {
      if ((response.headers.get("Content-Type") || "").indexOf("application/json") === 0) {
        return response.json().then(function (data) {
          return { ok: response.ok && data.ok, data: data };
        });
      }
      if (response.status === 403 || response.redirected) {
        return { ok: false, data: { message: EXPIRED } };
      }
      throw new Error("unexpected answer " + response.status);
    });
  }

  function say(message) {
    statusBox.textContent = message;
    statusBox.hidden = !message;
  }

  // The list "+N" opens: focus goes into it, its close button is reached by Tab and
  // pressed with Enter or Space, and focus comes back to "+N" when it closes.
  function popoverForKeyboard(popover, link) {
    var close = popover.querySelector(".fc-popover-close");
    if (close && !close.hasAttribute("tabindex")) {
      close.setAttribute("role", "button");
      close.setAttribute("tabindex", "0");
      close.setAttribute("aria-label", close.getAttribute("title") || "Close");
      close.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          close.click();
        }
      });
    }
    popover.setAttribute("tabindex", "-1");
    popover.focus({ preventScroll: true }); // Tab goes on to its sessions
    var watcher = new MutationObserver(function () {
      if (popover.isConnected) return;
      watcher.disconnect();
      if (link && link.isConnected) link.focus();
    });
    watcher.observe(popover.parentNode, { childList: true });
  }

  var moreLink = null; // the "+N" last pressed
  el.addEventListener(
    "click",
    function (event) {
      moreLink = event.target.closest(".fc-more-link") || moreLink;
    },
    true
  );
  el.addEventListener(
    "keydown",
    function (event) {
      moreLink = event.target.closest(".fc-more-link") || moreLink;
    },
    true
  );
  new MutationObserver(function (changes) {
    changes.forEach(function (change) {
      change.addedNodes.forEach(function (node) {
        if (node.nodeType === 1 && node.classList.contains("fc-popover")) popoverForKeyboard(node, moreLink);
      });
    });
  }).observe(el, { childList: true, subtree: true });

  // The Week and Day views show 07:00 to 22:00, widened to whole hours to take in any session
  // or free time of the dates shown outside them (a late session would otherwise be fetched
  // but shown nowhere). startStr/endStr are wall-clock times in the clinic's zone.
  var HOURS = [7, 22];
  function minutesOf(text) {
    return Number(text.slice(11, 13)) * 60 + Number(text.slice(14, 16));
  }
  function fitHours() {
    var view = calendar.view;
    if (view.type.indexOf("timeGrid") !== 0) return;
    var first = HOURS[0] * 60;
    var last = HOURS[1] * 60;
    calendar.getEvents().forEach(function (event) {
      if (event.allDay) return; // a day's totals, from the Month view, until the new view's events come
      var end = event.end || event.start;
      if (end <= view.activeStart || event.start >= view.activeEnd) return;
      var endStr = event.endStr || event.startStr;
      var starts = minutesOf(event.startStr);
      var ends = minutesOf(endStr);
      if (endStr.slice(0, 10) !== event.startStr.slice(0, 10)) {
        ends = 24 * 60; // to midnight...
        if (endStr.slice(11, 16) !== "00:00") starts = 0; // ...and on, into the next day's small hours
      }
      if (event.start < view.activeStart) starts = 0;
      first = Math.min(first, starts);
      last = Math.max(last, ends);
    });
    var hour = function (minutes) {
      return String(minutes / 60).padStart(2, "0") + ":00:00";
    };
    var min = hour(Math.floor(first / 60) * 60);
    var max = hour(Math.ceil(last / 60) * 60);
    if (calendar.getOption("slotMinTime") !== min) calendar.setOption("slotMinTime", min);
    if (calendar.getOption("slotMaxTime") !== max) calendar.setOption("slotMaxTime", max);
  }

  function cancelledLast(a, b) {
    var one = a.ui.classNames.indexOf("ms-cancelled") >= 0;
    var other = b.ui.classNames.indexOf("ms-cancelled") >= 0;
    return one === other ? 0 : one ? 1 : -1;
  }

  // A day's date that opens the Day view (navLinks): FullCalendar's <a> takes focus and acts
  // on Enter and Space, but has no href, so nothing told it is pressable.
  function markDayButton(cell) {
    var link = cell.querySelector("a[data-navlink]");
    if (link) {
      link.setAttribute("role", "button");
    }
  }

  var calendar = new FullCalendar.Calendar(el, {
    plugins: [clinicZonePlugin],
    timeZone: zone,
    // Day-first dates (30/11, 30 Nov - 6 Dec 2026), as read in India; English words.
    locale: "en-GB",
    initialView: window.matchMedia("(max-width: 640px)").matches ? "listWeek" : "timeGridWeek",
    headerToolbar: {
      left: "prev,next today",
      center: "title",
      right: "dayGridMonth,timeGridWeek,timeGridDay,listWeek",
    },
    buttonText: { today: "Today", month: "Month", week: "Week", day: "Day", list: "List" },
    firstDay: 1,
    nowIndicator: true,
    slotMinTime: "07:00:00",
    slotMaxTime: "22:00:00",
    eventsSet: function () {
      fitHours();
    },
    datesSet: function () {
      fitHours();
    },
    allDaySlot: false,
    height: "auto",
    selectable: true,
    selectMirror: true,
    // Free slots are published for times within one day, in the Week and Day views: a
    // whole-day selection (Month view) would publish slots round the clock.
    selectAllow: withinOneDay,
    // A session keeps its length: only its start can move (the feed marks which sessions may).
    eventDurationEditable: false,
    // A clinic of many counsellors books dozens of sessions at the same hour: a Month day
    // shows its first few and "+N more" (a list of the rest), and the Week and Day views set
    // at most a few side by side, with a "+N" for the others, so every title stays readable.
    dayMaxEvents: 4,
    // Of sessions at the same time, a cancelled one goes last: the one shown before "+N" is
    // the session that is taking place (a cancelled booking's slot is often booked again).
    // A day's totals (the Month view of every counsellor) come in the order of their rank:
    // sessions, free slots, cancelled bookings.
    eventOrder: ["start", cancelledLast, "-duration", "allDay", "rank", "title"],
    views: {
      // "Mon 30": the title above names the month. "Mon 30/11" broke over two lines in the
      // narrower columns, so some days' headings took two lines and others one.
      timeGridWeek: { eventMaxStack: 1, dayHeaderFormat: { weekday: "short", day: "numeric" } },
      timeGridDay: { eventMaxStack: 6 },
    },
    // FullCalendar's "+N" opens its list on a click, Enter or Space, as a button does: say so
    // to screen readers (it is an <a> without a link). Its title says what it shows.
    moreLinkDidMount: function (info) {
      info.el.setAttribute("role", "button");
    },

    // A day's heading (Week view) and date (Month view) open that day in the Day view: the
    // Day button opens only the day shown first, so a keyboard user reached Thursday by Day
    // then Next, Next, Next. FullCalendar wrote them as <a> without a link (underlined by
    // the site's styles, as a link, and not reachable by Tab); with navLinks it makes them
    // take focus and act on Enter and Space, as a button does, and they say so.
    navLinks: true,
    navLinkHint: "Show $0 in the Day view",
    dayHeaderDidMount: function (info) {
      markDayButton(info.el);
    },
    // A Month day is labelled by its date alone, which hid its sessions from its name: the
    // cell is read by its content instead (the date's button, then the sessions).
    dayCellDidMount: function (info) {
      info.el.removeAttribute("aria-labelledby");
      markDayButton(info.el);
    },
    eventTimeFormat: { hour: "2-digit", minute: "2-digit", hour12: false },
    slotLabelFormat: { hour: "2-digit", minute: "2-digit", hour12: false },
    // Every view fetches its own dates: the Month view of every counsellor has each day's
    // totals (summary=month; the feed gives them only for ranges longer than a week), which
    // a Week or Day view within that month must not reuse.
    lazyFetching: false,
    events: {
      url: el.dataset.feedUrl,
      extraParams: function () {
        var counsellor = counsellorSelect ? counsellorSelect.value : "";
        return counsellor ? { counsellor: counsellor } : { summary: "month" };
      },
      failure: function () {
        say("The calendar could not load. Reload the page, or use the booking list.");
      },
    },
    eventDidMount: function (info) {
      // Sessions carry a status and a counsellor; a day's totals their breakdown; free slots
      // (background events) carry nothing.
      var p = info.event.extendedProps;
      if (p.summary) {
        // Pressed (click, Enter or Space), it opens the Day view of that day.
        info.el.setAttribute("role", "button");
        info.el.setAttribute("title", p.summary + ". Show this day.");
        var breakdown = document.createElement("span");
        breakdown.className = "sr-only";
        breakdown.textContent = p.summary.slice(info.event.title.length) + ". Show this day.";
        (info.el.querySelector(".fc-event-title") || info.el).appendChild(breakdown);
      } else if (p.status) {
        // Around a change of the clocks a time can be read twice (01:30 BST, then 01:30 GMT):
        // the session's times say which.
        var start = info.event.start;
        var end = info.event.end || start;
        var time = info.el.querySelector(".fc-event-time, .fc-list-event-time");
        if (time && (nearClockChange(start) || nearClockChange(end))) {
          time.textContent = clinicSpan(start, end, false);
        }
        info.el.setAttribute("title", info.event.title + " · " + p.status + " · " + p.counsellor);
        // "MS-ABC123 · PS": the acknowledgement ID stays on one line (a line may break after
        // its hyphen, leaving "MS-" alone in a narrow column), and so do "· PS", the initials
        // (a line ending in "·", the initials cut off below it, said nothing).
        var heading = info.el.querySelector(".fc-event-title");
        var parts = /^(MS-\S+) (· .+)$/.exec(info.event.title);
        if (heading && parts && heading.firstChild && heading.firstChild.nodeType === Node.TEXT_NODE) {
          var rest = heading.firstChild;
          rest.textContent = " ";
          [parts[1], parts[2]].forEach(function (text, i) {
            var part = document.createElement("span");
            part.className = "ms-event-part";
            part.textContent = text;
            heading.insertBefore(part, i === 0 ? rest : rest.nextSibling);
          });
        }
        // The status is written after the title, not told by the colour alone (cancelled and
        // completed are both grey, and the others are hard to tell apart for many); screen
        // readers hear it and the counsellor after the visible time and title (an aria-label
        // would hide the visible text from voice-control users).
        var status = document.createElement("span");
        status.className = "ms-event-status";
        var separator = document.createElement("span");
        separator.className = "ms-event-sep"; // hidden, still read, where the status has a line of its own
        separator.textContent = ", ";
        status.appendChild(separator);
        status.appendChild(document.createTextNode(p.status));
        var extra = document.createElement("span");
        extra.className = "sr-only";
        extra.textContent = ", with " + p.counsellor;
        status.appendChild(extra);
        (info.el.querySelector(".fc-event-title, .fc-list-event-title a") || info.el).appendChild(status);
      }
    },
    eventClick: function (info) {
      if (info.event.extendedProps.summary) {
        calendar.changeView("timeGridDay", info.event.startStr);
        return;
      }
      if (!info.event.url) return;
      info.jsEvent.preventDefault();
      htmx.ajax("GET", info.event.url, { target: "#booking-panel", swap: "innerHTML" }).then(function () {
        var detail = document.getElementById("booking-detail");
        if (!detail) return;
        // The browser's own scrolling on focus showed a panel taller than the screen (on a
        // phone, below the calendar) by its end, its heading far above: its start instead,
        // and no scrolling when that is in view already (the wide layout's sticky panel).
        detail.focus({ preventScroll: true });
        var top = detail.getBoundingClientRect().top;
        if (top < 0 || top + 100 > window.innerHeight) detail.scrollIntoView({ block: "start" });
      });
    },
    // Dragging a session onto another free time of its counsellor moves the booking (the
    // server finds the free slot starting there, or refuses and the event goes back).
    eventDrop: function (info) {
      var p = info.event.extendedProps;
      if (!p.dropUrl) {
        info.revert();
        return;
      }
      var when = clinicTime(info.event.start, true) + " " + zoneName(info.event.start);
      if (!window.confirm("Move " + info.event.title + " to " + when + "? The client will be emailed.")) {
        info.revert();
        return;
      }
      post(p.dropUrl, { start: info.event.start.toISOString(), version: String(p.version) })
        .then(function (result) {
          say(result.data.message || (result.ok ? "Moved." : "The session could not be moved."));
          if (!result.ok) info.revert();
          calendar.refetchEvents();
        })
        .catch(function () {
          info.revert();
          say("The session could not be moved. Please try again.");
        });
    },
    select: function (info) {
      if (!withinOneDay(info)) {
        say("Select a time within one day, in the Week or Day view.");
        calendar.unselect();
        return;
      }
      var counsellorId = counsellorSelect ? counsellorSelect.value : "";
      if (!counsellorId) {
        say("Choose a counsellor first, then select the time to publish.");
        calendar.unselect();
        return;
      }
      var name = counsellorSelect.options[counsellorSelect.selectedIndex].text;
      var minutes = sessionInput.value;
      var buffer = bufferInput.value;
      var range = clinicSpan(info.start, info.end, true);
      if (!window.confirm("Publish " + minutes + "-minute free slots (" + buffer + " min apart) for " + name + ", " + range + "?")) {
        calendar.unselect();
        return;
      }
      post(el.dataset.publishUrl, {
        counsellor: counsellorId,
        start: info.startStr,
        end: info.endStr,
        session_minutes: minutes,
        buffer_minutes: buffer,
      })
        .then(function (result) {
          say(result.data.message || (result.ok ? "Done." : "The slots could not be published."));
          calendar.refetchEvents();
        })
        .catch(function () {
          say("The slots could not be published. Please try again.");
        });
      calendar.unselect();
    },
  });
  calendar.render();
  // FullCalendar's toolbar icons are decorative (the buttons carry titles): hide them from
  // assistive technology, which otherwise finds images without a text alternative.
  el.querySelectorAll(".fc-toolbar .fc-icon").forEach(function (icon) {
    icon.setAttribute("aria-hidden", "true");
  });

  if (counsellorSelect) {
    counsellorSelect.addEventListener("change", function () {
      calendar.refetchEvents();
    });
  }
  // Actions in the side panel answer with HX-Trigger: bookingChanged.
  document.body.addEventListener("bookingChanged", function () {
    calendar.refetchEvents();
  });
})();
