// The top bar's controls and the URL are one state: the URL (?period=2026Q3 or
// ?from=2026-07-01&to=2026-07-31, &lang=en, &profile=...) fills the controls, and a choice in a
// control rewrites the URL (Dash pages then lays the page out again), so any view can be shared.
window.dash_clientside = Object.assign({}, window.dash_clientside, {
  dcmon: {
    urlState: function (search, value, start, end, lang) {
      const nu = window.dash_clientside.no_update;
      const ctx = window.dash_clientside.callback_context;
      const fired = (ctx && ctx.triggered || []).map(function (t) { return t.prop_id; });
      const q = new URLSearchParams(search || "");
      const byUser = fired.some(function (p) { return p !== "_pages_location.search" && p !== "."; });
      if (!byUser) {
        // the URL changed (or the page loaded): show its state in the controls
        const from = q.get("from"), to = q.get("to");
        const asked = q.get("period") || "";
        const p = (from && to) || !/^\d{4}(Q[1-4])?$/i.test(asked) ? null : asked.toUpperCase();
        return [nu, p, from && to ? from : null, from && to ? to : null, q.get("lang") === "en" ? "en" : "zh"];
      }
      if (fired.indexOf("period.value") >= 0 && value) {
        q.set("period", value); q.delete("from"); q.delete("to");
      } else if ((fired.indexOf("range.start_date") >= 0 || fired.indexOf("range.end_date") >= 0) && start && end) {
        q.set("from", start.slice(0, 10)); q.set("to", end.slice(0, 10)); q.delete("period");
      } else if (fired.indexOf("lang.value") >= 0 && lang) {
        q.set("lang", lang);
      } else {
        return [nu, nu, nu, nu, nu];
      }
      const next = "?" + q.toString();
      return [next === (search || "?") ? nu : next, nu, nu, nu, nu];
    },
    // the subsidy page's profile choice goes into the URL without laying the page out again
    profileInUrl: function (profile) {
      if (!profile) { return window.dash_clientside.no_update; }
      const q = new URLSearchParams(window.location.search);
      if (q.get("profile") !== profile) {
        q.set("profile", profile);
        window.history.replaceState(window.history.state, "", window.location.pathname + "?" + q.toString());
      }
      return profile;
    }
  }
});
