fetch("/api/version").then((r) => r.text()).then((v) => {
  document.getElementById("version").textContent = "api " + v;
});
