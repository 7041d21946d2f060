/*
 * freshet.js — a small browser helper for Freshet's Server-Sent Events (GET /freshet.js).
 *
 *   const sub = Freshet.subscribe(["users/42", "orders"], change => refetch(change), {
 *     onResync: () => refetchEverything(),   // events may have been missed: reload what the page shows
 *   });
 *   sub.close();
 *
 * Options: url (Freshet's base URL, default: same origin), token (sent as access_token; EventSource cannot set
 * headers), withCredentials (send cookies cross-origin, e.g. freshet_token), onStatus(state) with state one of
 * "connecting", "open", "reconnecting", "closed".
 *
 * It resumes after a dropped connection from the last event id it saw, so nothing is missed or doubled; when Freshet
 * cannot replay (it restarted, or the gap is too long) it calls onResync instead.
 */
(function (root) {
  "use strict";

  function subscribe(topics, onChange, options) {
    options = options || {};
    var list = Array.isArray(topics) ? topics : topics ? [topics] : [];
    var base = (options.url || "").replace(/\/$/, "") + "/events";
    var lastEventId = null;
    var source = null;
    var closed = false;
    var timer = null;
    var delay = 1000;

    function status(state) {
      if (options.onStatus) options.onStatus(state);
    }

    function url() {
      var params = list.map(function (t) { return "topic=" + encodeURIComponent(t); });
      if (options.token) params.push("access_token=" + encodeURIComponent(options.token));
      if (lastEventId) params.push("lastEventId=" + encodeURIComponent(lastEventId));
      return base + (params.length ? "?" + params.join("&") : "");
    }

    function parse(event) {
      if (event.lastEventId) lastEventId = event.lastEventId;
      try { return JSON.parse(event.data); } catch (e) { return null; }
    }

    function connect() {
      status("connecting");
      source = new EventSource(url(), { withCredentials: !!options.withCredentials });
      source.onopen = function () { delay = 1000; status("open"); };
      source.addEventListener("change", function (event) {
        var change = parse(event);
        if (change) onChange(change, event);
      });
      source.addEventListener("resync", function (event) {
        var info = parse(event) || {};
        if (options.onResync) options.onResync(info, event);
      });
      source.onerror = function () {
        if (closed) return;
        if (source.readyState === EventSource.CLOSED) {
          // The browser gave up (e.g. 401, or the server is down): retry ourselves, resuming from lastEventId.
          status("closed");
          timer = setTimeout(connect, delay);
          delay = Math.min(delay * 2, 30000);
        } else {
          status("reconnecting");  // the browser reconnects by itself, sending Last-Event-ID
        }
      };
    }

    connect();
    return {
      close: function () {
        closed = true;
        clearTimeout(timer);
        if (source) source.close();
        status("closed");
      },
      get lastEventId() { return lastEventId; },
    };
  }

  root.Freshet = { subscribe: subscribe, version: "0.1.0" };
})(typeof window !== "undefined" ? window : this);
