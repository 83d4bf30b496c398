// When the session has ended (logout in another tab, a changed password, idle time), every
// callback answers 401: go to the login page instead of leaving a page that no longer updates.
(function () {
  const fetch0 = window.fetch;
  window.fetch = function () {
    return fetch0.apply(this, arguments).then(function (resp) {
      if (resp.status === 401 && String(resp.url).indexOf("/_dash-") !== -1) {
        window.location.assign("/login");
      }
      return resp;
    });
  };
})();
