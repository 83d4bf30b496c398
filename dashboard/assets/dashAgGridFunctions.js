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
