// Applies the chosen theme before the page paints (no flash): "light", "dark", or the
// system's (prefers-color-scheme) when none was chosen.
(function () {
  try {
    var t = localStorage.getItem("atelier-theme");
    if (t === "light" || t === "dark") document.documentElement.setAttribute("data-theme", t);
  } catch (e) {}
})();
