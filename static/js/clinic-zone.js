// A time zone for FullCalendar's named-zone plugin slot (its namedTimeZonedImpl), from the
// browser's Intl: the staff calendar shows the clinic's zone whatever the browser's, with no
// date library. Loaded before calendar.js, which registers it; e2e/test_clinic_zone.py checks
// it across clock changes.
(function () {
  "use strict";

  // FullCalendar's named time zones need a plugin (without one it shows the feed's UTC times
  // as if they were the zone's). This one asks the browser's Intl, so no library is needed.
  // FullCalendar constructs it with the zone's name and calls:
  //   timestampToArray(ms): the zone's wall clock at a UTC timestamp, as
  //     [year, month0, day, hour, minute, second, ms];
  //   offsetForArray(a): the zone's UTC offset in minutes at the wall-clock time a.
  var wallClocks = {}; // one formatter per zone: creating one is slow

  function wallClock(timeZone) {
    if (!wallClocks[timeZone]) {
      wallClocks[timeZone] = new Intl.DateTimeFormat("en-US", {
        timeZone: timeZone,
        hourCycle: "h23",
        year: "numeric",
        month: "numeric",
        day: "numeric",
        hour: "numeric",
        minute: "numeric",
        second: "numeric",
      });
    }
    return wallClocks[timeZone];
  }

  function ClinicZone(timeZoneName) {
    this.timeZoneName = timeZoneName;
    this.format = wallClock(timeZoneName);
    this.offsets = {}; // by wall-clock time: FullCalendar asks for the same times many times
  }
  ClinicZone.prototype.timestampToArray = function (ms) {
    var parts = {};
    this.format.formatToParts(new Date(ms)).forEach(function (part) {
      parts[part.type] = part.value;
    });
    return [
      Number(parts.year),
      Number(parts.month) - 1,
      Number(parts.day),
      Number(parts.hour) % 24, // some engines once wrote midnight as 24 even with h23
      Number(parts.minute),
      Number(parts.second),
      ((ms % 1000) + 1000) % 1000,
    ];
  };
  // The offset (minutes east of UTC) at the instant `ms`.
  ClinicZone.prototype.offsetAt = function (ms) {
    var a = this.timestampToArray(ms);
    return Math.round((Date.UTC(a[0], a[1], a[2], a[3], a[4], a[5], a[6]) - ms) / 60000);
  };
  ClinicZone.prototype.offsetForArray = function (a) {
    var local = Date.UTC(a[0], a[1], a[2], a[3] || 0, a[4] || 0, a[5] || 0, a[6] || 0);
    if (!(local in this.offsets)) this.offsets[local] = this.offsetAtWallClock(local);
    return this.offsets[local];
  };
  ClinicZone.prototype.offsetAtWallClock = function (local) {
    // The offsets in force a day before and a day after: a zone changes its offset at most
    // once in two days, so the wall-clock time has one of these.
    var before = this.offsetAt(local - 864e5);
    var after = this.offsetAt(local + 864e5);
    var fits = [before, after].filter(function (offset) {
      return this.offsetAt(local - offset * 60000) === offset;
    }, this);
    // A time that happens twice (clocks going back) is taken the first time, the larger
    // offset. A time that never happens (clocks going forward) takes the offset from before
    // the change, which moves it forward past the gap, as a wall clock would.
    return fits.length ? Math.max.apply(null, fits) : before;
  };

  window.ClinicZone = ClinicZone;
})();
