// Number formatting of the overview grid, in the page's language (Intl, BCP 47 locale).
// The grid keeps the numbers themselves, so sorting and number filters still work.
var dagfuncs = (window.dashAgGridFunctions = window.dashAgGridFunctions || {});

dagfuncs.dcmonNumber = function (value, locale, digits) {
  if (value === null || value === undefined || Number.isNaN(value)) {
    return "—";
  }
  return new Intl.NumberFormat(locale, {minimumFractionDigits: digits, maximumFractionDigits: digits}).format(value);
};

dagfuncs.dcmonPercent = function (value, locale, digits) {
  if (value === null || value === undefined || Number.isNaN(value)) {
    return "—";
  }
  return new Intl.NumberFormat(locale, {style: "percent", minimumFractionDigits: digits,
                                        maximumFractionDigits: digits}).format(value);
};

// A facility's name as a link to its page, navigating inside the app (no reload) on a plain
// click; with a modifier key or the middle button the browser opens it as usual.
var dagcomponentfuncs = (window.dashAgGridComponentFunctions = window.dashAgGridComponentFunctions || {});

dagcomponentfuncs.FacilityLink = function (props) {
  var href = "/facility/" + encodeURIComponent(props.data.id) + (window.location.search || "");
  return React.createElement("a", {
    href: href,
    onClick: function (e) {
      if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) {
        return;
      }
      e.preventDefault();
      window.history.pushState({}, "", href);
      window.dispatchEvent(new CustomEvent("_dashprivate_historychange"));
      window.scrollTo(0, 0);
    }
  }, props.value);
};
