// The period choice of the top bar, resolved in the browser (no server round trip):
// picking a quarter or year clears the custom range, picking a full range clears the dropdown.
window.dash_clientside = Object.assign({}, window.dash_clientside, {
  dcmon: {
    periodChoice: function (value, start, end) {
      const nu = window.dash_clientside.no_update;
      const ctx = window.dash_clientside.callback_context;
      const fired = (ctx && ctx.triggered || []).map(function (t) { return t.prop_id; });
      if (fired.indexOf("period.value") >= 0 && value) {
        return [{period: value}, nu, null, null];
      }
      if ((fired.indexOf("range.start_date") >= 0 || fired.indexOf("range.end_date") >= 0) && start && end) {
        return [{from: start.slice(0, 10), to: end.slice(0, 10)}, null, nu, nu];
      }
      return [nu, nu, nu, nu];
    }
  }
});
